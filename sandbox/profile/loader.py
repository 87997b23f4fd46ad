"""Load profiles by name or path: YAML with line numbers, each problem as FILE:LINE:COL path."""

from __future__ import annotations

import difflib
import gc
import ipaddress
import os
import re
import types
import typing
from collections.abc import Hashable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ValidationError
from pydantic_core import ErrorDetails

from sandbox.errors import ProfileError, ProfileNotFound, SandboxError
from sandbox.profile.checks import check_profile
from sandbox.profile.finder import Origin, _profile_files
from sandbox.profile.finder import bundled_dir as bundled_dir  # re-exported
from sandbox.profile.finder import find_profile as find_profile  # re-exported
from sandbox.profile.finder import profile_dirs as profile_dirs  # re-exported
from sandbox.profile.models import NAME_PATTERN, CommandService, HttpService, Profile, TcpService
from sandbox.profile.yaml_marks import Located, Tree, parse, read_profile_bytes

_KINDS = "http (a stub web server), tcp (a stub TCP server) or command (a real program)"
_SERVICES: tuple[type[BaseModel], ...] = (HttpService, TcpService, CommandService)


@dataclass(frozen=True)
class FoundProfile:
    """A profile file found by `discover`; `error` is the first problem if it does not load."""

    name: str
    path: Path
    origin: Origin
    description: str = ""
    error: str | None = None
    shadows: tuple[Path, ...] = ()  # files of the same name later in the search order


def load_profile(ref: str | os.PathLike[str], *, search: Sequence[Path] | None = None) -> Profile:
    """Load a profile by path or by name (see `find_profile`); it remembers its file.

    Raises ProfileNotFound if there is no such profile, ProfileError listing every problem
    if it is invalid. Leaves no file open.
    """
    return _load_file(find_profile(ref, search=search))


# libyaml's parser, when PyYAML was built with it: about 5x faster on a large profile.
_FAST_LOADER: type[yaml.SafeLoader] | None = getattr(yaml, "CSafeLoader", None)


@contextmanager
def _no_gc() -> Iterator[None]:
    """Without the cycle collector: a large profile is tens of thousands of new objects, none
    of them garbage yet, which it would walk again and again (40 % of loading 3000 services)."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def load_profile_text(text: str, source: str = "<string>") -> Profile:
    """Load a profile from YAML text; `source` names it in messages. Raises ProfileError."""
    with _no_gc():
        return _load_text(text, source)


def _load_text(text: str, source: str) -> Profile:
    if _FAST_LOADER is not None:
        try:
            # No node is kept, and the tree is let go before the models are made, which
            # then reuse its memory: the tree only places problems, and problems are
            # placed by the slower loader below.
            data, tree = parse(text, source, _FAST_LOADER, places=False)
            if not tree.problems:  # (a duplicate key is one: the slower loader says so)
                del tree
                return _validate(data, None, source)
        except ProfileError:
            pass  # every problem is reported as the pure-Python loader words and places it
    data, tree = parse(text, source)
    return _validate(data, tree, source)


def load_profile_data(data: Mapping[str, Any], source: str = "<dict>") -> Profile:
    """Validate an in-memory profile; problems carry field paths but no line numbers."""
    return _validate(data, None, source)


def discover(search: Sequence[Path] | None = None) -> list[FoundProfile]:
    """Every profile reachable by name, sorted by name; a name found twice is listed once,
    the file that wins, with the files it shadows. Invalid profiles are listed with their
    first problem. Raises nothing for a bad file or folder.
    """
    winners: dict[str, tuple[Path, Origin]] = {}
    shadowed: dict[str, list[Path]] = {}
    for folder, origin in profile_dirs(search):
        for path in _profile_files(folder):
            if path.stem in winners:
                shadowed.setdefault(path.stem, []).append(path)
            else:
                winners[path.stem] = (path, origin)
    found = []
    for name in sorted(winners):
        path, origin = winners[name]
        description, error = "", None
        try:
            description = _load_file(path).description
        except ProfileError as exc:
            more = len(exc.problems) - 1
            error = exc.problems[0] if exc.problems else exc.message
            error += f" (and {more} more)" if more > 0 else ""
        except SandboxError as exc:
            error = exc.message
        found.append(
            FoundProfile(name, path, origin, description, error, tuple(shadowed.get(name, [])))
        )
    return found


def _load_file(path: Path) -> Profile:
    source = str(path)
    try:
        raw = read_profile_bytes(path)
    except (FileNotFoundError, NotADirectoryError):
        raise ProfileNotFound(
            f"There is no profile file at {source}.",
            hint="check the path; `sandbox profiles` lists the profiles found by name",
        ) from None
    except IsADirectoryError:
        raise ProfileNotFound(
            f"{source} is a folder, not a profile file.",
            hint="pass the path of a .yaml file, or a profile's name",
        ) from None
    except OSError as exc:
        raise ProfileError(source, [f"{source} cannot be read: {exc.strerror or exc}"]) from None
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = raw.count(b"\n", 0, exc.start) + 1
        before = raw[raw.rfind(b"\n", 0, exc.start) + 1 : exc.start]
        col = len(before.decode("utf-8", "replace")) + 1
        raise ProfileError(
            source,
            [
                f"{source}:{line}:{col} the file is not UTF-8 text "
                f"(byte 0x{raw[exc.start]:02x}): save it as UTF-8"
            ],
        ) from None
    # The absolute path, so `file:` and `cwd:` still resolve if the working folder changes.
    return load_profile_text(text, source).with_source(str(path.absolute()))


def _validate(data: Any, tree: Tree | None, source: str) -> Profile:
    if not isinstance(data, Mapping):
        node = tree.node(()) if tree else None
        need = f"the top level must be a mapping with `name:` and `services:`, not {_a(data)}"
        raise ProfileError(source, [_format(source, tree, (node, (), need))])
    found: list[Located] = list(tree.problems) if tree else []
    try:
        profile = Profile.model_validate(data)
    except ValidationError as exc:
        found += _from_pydantic(exc.errors(include_url=False), data, tree)
    else:
        # Cross-field checks need a valid shape, so they run once pydantic is satisfied.
        for path, message in check_profile(profile):
            found.append((tree.node(path) if tree else None, path, message))
        if not found:
            return profile
    found.sort(key=lambda f: (f[0].start_mark.line, f[0].start_mark.column) if f[0] else (0, 0))
    raise ProfileError(source, [_format(source, tree, f) for f in found])


def _format(source: str, tree: Tree | None, found: Located) -> str:
    node, path, message = found
    where = f"{source}:{node.start_mark.line + 1}:{node.start_mark.column + 1}" if node else source
    # Name keys as written: YAML reads a key like `on` or `1` as true or a number.
    keys = [tree.keys.get(path[: i + 1]) if tree else None for i in range(len(path))]
    names = [
        k.value if isinstance(k, yaml.ScalarNode) else str(p)
        for k, p in zip(keys, path, strict=True)
    ]
    field = ".".join(names)
    return f"{where} {field}: {message}" if field else f"{where} {message}"


def _locate(loc: tuple[Any, ...], data: Any, kind: str) -> tuple[tuple[Any, ...], str, bool]:
    """Follow a pydantic `loc` through the data: (real path, what to point at, union branch?).

    pydantic adds items that are not keys: the kind after a service's name, a union
    member like `constrained-int`, `[key]` for a bad dict key.
    """
    path: list[Any] = []
    here, branch, tagged = data, False, False
    for i, item in enumerate(loc):
        at_service = len(path) == 2 and path[0] == "services" and isinstance(here, Mapping)
        if at_service and not tagged and item == here.get("kind"):
            tagged = True
        elif _has(here, item):
            path.append(item)
            here = here[item]
        elif item == "[key]":
            return tuple(path), "key", branch
        elif kind == "missing" and i == len(loc) - 1:
            return (*path, item), "parent", branch
        else:
            branch = True
    return tuple(path), "key" if kind == "extra_forbidden" else "value", branch


def _has(here: Any, item: Any) -> bool:
    if isinstance(here, Mapping):
        return isinstance(item, Hashable) and item in here
    return isinstance(here, list) and isinstance(item, int) and 0 <= item < len(here)


def _from_pydantic(errors: list[ErrorDetails], data: Any, tree: Tree | None) -> list[Located]:
    found: list[Located] = []
    branches: dict[tuple[Any, ...], list[ErrorDetails]] = {}
    for err in errors:
        path, anchor, branch = _locate(err["loc"], data, err["type"])
        node = None
        if err["type"].startswith("union_tag"):
            path = (*path, "kind")
            anchor = "value" if err["type"] == "union_tag_invalid" else "parent"
        if tree is not None:
            node = tree.node(path[:-1] if anchor == "parent" else path, key=anchor == "key")
        if branch:
            # One message per field for a union (port: a number or `auto`), not one per member.
            if path not in branches:
                branches[path] = []
                found.append((node, path, ""))
            branches[path].append(err)
        else:
            found.append((node, path, _message(err, node)))
    return [(n, p, m or _union(branches[p], n)) for n, p, m in found]


def _union(errors: list[ErrorDetails], node: yaml.Node | None) -> str:
    value = errors[0]["input"]
    if isinstance(value, int | float) and not isinstance(value, bool):
        errors = [e for e in errors if e["type"] != "literal_error"] or errors
    parts = list(dict.fromkeys(_message(e, node, got=False) for e in errors))
    if len(parts) == 1:
        return _message(errors[0], node)
    text = "must be " + ", or ".join(p.removeprefix("must be ") for p in parts)
    return f"{text} (got {_shown(value, node)})"


def _message(err: ErrorDetails, node: yaml.Node | None, *, got: bool = True) -> str:
    kind, ctx, value = err["type"], err.get("ctx", {}), err["input"]
    shown = f" (got {_shown(value, node)})" if got else ""
    if kind == "missing":
        return "missing required field"
    if kind == "extra_forbidden":
        return _unknown_key(err["loc"])
    if kind == "union_tag_invalid":
        return f"unknown kind `{ctx['tag']}`: a service's kind is {_KINDS}"
    if kind == "union_tag_not_found":
        return f"missing required field: a service's kind is {_KINDS}"
    if kind in ("value_error", "assertion_error"):
        return re.sub(r"^(Value error|Assertion failed), ", "", err["msg"])
    for bound, words in (("le", "at most"), ("ge", "at least"), ("lt", "below"), ("gt", "above")):
        if bound in ctx and kind.endswith(("than", "equal")):
            return f"must be {words} {ctx[bound]}"
    if kind == "string_type" and isinstance(value, bool | int | float):
        text = node.value if isinstance(node, yaml.ScalarNode) else repr(value)
        reads = "true/false" if isinstance(value, bool) else "a number"
        return f'must be text, but YAML reads {text} as {reads}: quote it, "{text}"'
    if kind == "string_pattern_mismatch" and ctx.get("pattern") == NAME_PATTERN:
        return f"{value!r} is not a valid name: a lowercase letter, then a-z, 0-9, - or _"
    if kind == "literal_error":
        choices = [c.strip("'") for c in re.split(r", | or ", ctx["expected"])]
        if len(choices) == 1:
            return f"must be `{choices[0]}`{shown}"
        return f"must be one of {', '.join(choices[:-1])} or {choices[-1]}{shown}"
    if kind == "ip_v4_network":
        try:
            net = ipaddress.ip_network(str(value), strict=False)
        except ValueError:
            return f"must be an IPv4 network like 127.20.0.0/16{shown}"
        return f"{value} has host bits set: write the network, {net}"
    if kind == "too_short" and err["loc"] == ("services",):
        return "must name at least one service"
    if kind in _TYPES:
        return _TYPES[kind] + shown
    return err["msg"].replace("Input should be", "must be", 1) + shown


_MAPPING = "must be a mapping (`key: value` lines or `{key: value}`)"
_TYPES = {
    "int_type": "must be a whole number",
    "int_parsing": "must be a whole number",
    "int_from_float": "must be a whole number",
    "float_type": "must be a number",
    "float_parsing": "must be a number",
    "bool_type": "must be true or false",
    "bool_parsing": "must be true or false",
    "string_type": "must be text",
    "string_too_short": "must not be empty",
    "list_type": "must be a list (`[a, b]`, or one `- item` per line)",
    "dict_type": _MAPPING,
    "model_type": _MAPPING,
    "model_attributes_type": _MAPPING,
}


def _shown(value: Any, node: yaml.Node | None) -> str:
    if isinstance(node, yaml.ScalarNode):
        return node.value or "nothing"
    return _a(value) if isinstance(value, Mapping | list) or value is None else repr(value)


def _a(value: Any) -> str:
    if value is None:
        return "nothing"
    if isinstance(value, Mapping):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    return "true/false" if isinstance(value, bool) else f"a single value ({value!r})"


def _unknown_key(loc: tuple[Any, ...]) -> str:
    key, model = str(loc[-1]), _model_at(loc[:-1])
    if model is None:
        return "unknown key"
    allowed = [f.alias or name for name, f in model.model_fields.items()]
    listed = ", ".join(allowed)
    owners = [m.__name__.removesuffix("Service").lower() for m in _SERVICES if key in _keys(m)]
    if model in _SERVICES and owners:
        kinds = " and ".join(owners)
        return f"unknown key here (`{key}` is for {kinds} services; allowed: {listed})"
    close = difflib.get_close_matches(key, allowed, n=1)
    guess = f"did you mean `{close[0]}`? " if close else ""
    return f"unknown key ({guess}allowed: {listed})"


def _keys(model: type[BaseModel]) -> set[str]:
    return {f.alias or name for name, f in model.model_fields.items()}


def _model_at(loc: tuple[Any, ...]) -> type[BaseModel] | None:
    """The model a pydantic `loc` (tags included) points into, by walking the annotations."""
    annotation: Any = Profile
    for item in (*loc, None):
        while True:  # strip Annotated[...] and `| None`
            if typing.get_origin(annotation) is typing.Annotated:
                annotation = typing.get_args(annotation)[0]
                continue
            args = [a for a in typing.get_args(annotation) if a is not type(None)]
            if _is_union(annotation) and len(args) == 1:
                annotation = args[0]
                continue
            break
        if item is None:
            break
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            fields = {f.alias or n: f for n, f in annotation.model_fields.items()}
            annotation = fields[item].annotation if item in fields else None
        elif typing.get_origin(annotation) in (dict, list):
            annotation = typing.get_args(annotation)[-1]
        elif _is_union(annotation):
            members = [m for m in typing.get_args(annotation) if m in _SERVICES]
            annotation = next((m for m in members if item in _kind(m)), None)
        else:
            return None
    is_model = isinstance(annotation, type) and issubclass(annotation, BaseModel)
    return annotation if is_model else None


def _is_union(annotation: Any) -> bool:
    return typing.get_origin(annotation) in (typing.Union, types.UnionType)


def _kind(model: type[BaseModel]) -> tuple[Any, ...]:
    return typing.get_args(model.model_fields["kind"].annotation)
