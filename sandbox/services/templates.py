"""Jinja2 templates in stub responses: compiled once, rendered sandboxed, strict about typos."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from sandbox.errors import StubConfigError as StubConfigError  # old home, still importable

if TYPE_CHECKING:
    import jinja2
    from jinja2 import nodes

_MARKERS = ("{{", "{%", "{#")
# Set when the first template is compiled (sandbox.services.jinja_env): the environment,
# and the Undefined class its lookups may return.
_ENV: Any = None
_UNDEFINED: Any = None


class RenderError(Exception):
    """A template failed while answering a request; `where` says which part of the response."""

    def __init__(self, where: str, source: str, detail: str) -> None:
        super().__init__(f"template in {where} failed: {detail}")
        self.where = where
        self.source = source
        self.detail = detail


NO_NAMES: frozenset[str] = frozenset()
_DICT_ATTRIBUTES = frozenset(dir(dict))
# A simple template's parts: literal text, or a name with the attributes read from it.
Part = str | tuple[str, tuple[str, ...]]


@dataclass(frozen=True)
class Text:
    """A string that may hold a template; plain strings are kept as they are, uncompiled."""

    source: str
    where: str
    template: jinja2.Template | None
    names: frozenset[str] = NO_NAMES  # the variables the template reads
    # Set for `text {{ a.b }} text` (no filter, test or statement): rendered without Jinja's
    # per-render context, reading each attribute through the environment as Jinja does.
    parts: tuple[Part, ...] | None = None

    def render(self, variables: Mapping[str, Any]) -> str:
        """The text with `variables` filled in. Raises RenderError (e.g. an undefined name)."""
        if self.template is None:
            return self.source
        if self.parts is not None:
            fast = _render_parts(self.parts, variables)
            if fast is not None:
                return fast
        import jinja2  # imported already: it compiled this template

        try:
            return self.template.render(variables)
        except jinja2.TemplateError as exc:
            raise RenderError(self.where, self.source, exc.message or str(exc)) from None
        except (ArithmeticError, LookupError, TypeError, ValueError) as exc:
            # `{{ 1 / 0 }}`, `{{ range(10**9) | list }}`: the template's fault, not the stub's.
            raise RenderError(self.where, self.source, f"{type(exc).__name__}: {exc}") from None


def _render_parts(parts: tuple[Part, ...], variables: Mapping[str, Any]) -> str | None:
    """The simple template rendered, or None where Jinja must render it (a name that is not
    a variable, an undefined attribute, anything that raises): Jinja then gives the same
    text or the same error it always did."""
    out: list[str] = []
    try:
        for part in parts:
            if isinstance(part, str):
                out.append(part)
                continue
            name, attributes = part
            if name not in variables:
                return None
            value = variables[name]
            for attribute in attributes:
                if type(value) is dict and attribute not in _DICT_ATTRIBUTES:
                    # What the environment's getattr finds, without the AttributeError it
                    # raises first: a plain dict has no other attributes.
                    if attribute not in value:
                        return None
                    value = value[attribute]
                else:
                    value = _ENV.getattr(value, attribute)
            if isinstance(value, _UNDEFINED):
                return None
            out.append(str(value))
    except Exception:
        return None
    return "".join(out)


def _parts_of(body: list[nodes.Node]) -> tuple[Part, ...] | None:
    """The parts of a template that is one output of text and `{{ name.attr... }}`."""
    from jinja2 import nodes

    if len(body) != 1 or not isinstance(body[0], nodes.Output):
        return None
    parts: list[Part] = []
    for node in body[0].nodes:
        if isinstance(node, nodes.TemplateData):
            parts.append(node.data)
            continue
        attributes: list[str] = []
        while isinstance(node, nodes.Getattr):
            attributes.append(node.attr)
            node = node.node
        if not isinstance(node, nodes.Name) or node.ctx != "load":
            return None
        parts.append((node.name, tuple(reversed(attributes))))
    return tuple(parts)


def compile_text(source: str, where: str) -> Text:
    """Compile `source` once. Raises StubConfigError naming `where` if the syntax is wrong."""
    if not any(marker in source for marker in _MARKERS):
        return Text(source, where, None)
    global _ENV, _UNDEFINED
    import jinja2
    from jinja2 import meta

    from sandbox.services.jinja_env import ENV

    _ENV, _UNDEFINED = ENV, jinja2.Undefined
    try:
        tree = ENV.parse(source)
        template = ENV.from_string(tree)
    except jinja2.TemplateSyntaxError as exc:
        raise StubConfigError(
            f"The template in {where} is not valid Jinja2: {exc.message} (line {exc.lineno}).",
            hint="Templates look like {{ path.id }} or {{ services.api.url }}; "
            "write {{ '{{' }} for a literal {{.",
        ) from None
    names = frozenset(meta.find_undeclared_variables(tree))
    return Text(source, where, template, names, _parts_of(tree.body))


def compile_json(value: Any, where: str) -> Any:
    """A JSON value with every string (keys excluded) compiled by `compile_text`."""
    if isinstance(value, str):
        return compile_text(value, where)
    if isinstance(value, dict):
        return {key: compile_json(item, f"{where}.{key}") for key, item in value.items()}
    if isinstance(value, list):
        return [compile_json(item, f"{where}[{index}]") for index, item in enumerate(value)]
    return value


def render_json(value: Any, variables: Mapping[str, Any]) -> Any:
    """The JSON structure of `compile_json`'s result with every template rendered (as text)."""
    if isinstance(value, Text):
        return value.render(variables)
    if isinstance(value, dict):
        return {key: render_json(item, variables) for key, item in value.items()}
    if isinstance(value, list):
        return [render_json(item, variables) for item in value]
    return value


def has_templates(value: Any) -> bool:
    """Whether a compiled value needs request variables to render."""
    if isinstance(value, Text):
        return value.template is not None
    if isinstance(value, dict):
        return any(has_templates(item) for item in value.values())
    if isinstance(value, list):
        return any(has_templates(item) for item in value)
    return False


def names_in(value: Any) -> frozenset[str]:
    """Every variable the templates in a compiled value read."""
    if isinstance(value, Text):
        return value.names
    if isinstance(value, dict):
        return NO_NAMES.union(*(names_in(item) for item in value.values()))
    if isinstance(value, list):
        return NO_NAMES.union(*(names_in(item) for item in value))
    return NO_NAMES
