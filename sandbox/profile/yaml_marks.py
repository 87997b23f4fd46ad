"""YAML with line numbers, bounded: a profile file read safely, parsed into data plus the node
of every key and value, with limits on size, depth and alias expansion."""

from __future__ import annotations

import os
import stat
from collections.abc import Hashable
from pathlib import Path
from typing import Any

import yaml
from yaml.constructor import ConstructorError

from sandbox.errors import ProfileError

Located = tuple["yaml.Node | None", tuple[Any, ...], str]  # node to point at, field path, message

MAX_BYTES = 1 << 20  # a profile of a thousand services is about 100 KiB
MAX_DEPTH = 32  # mappings and lists inside each other
MAX_NODES = 200_000  # values in the data, every alias counted each time it is used
MAX_ALIASED = 10_000  # of those, values reached again through an alias (`*name`) or a merge

_MAP, _SEQ, _MERGE, _STR = (f"tag:yaml.org,2002:{t}" for t in ("map", "seq", "merge", "str"))
# The key tags PyYAML's flatten_mapping acts on: a merge (`<<`), and `=` (made a string).
_FLATTENED = (_MERGE, "tag:yaml.org,2002:value")
_LIMITS_HINT = "see docs/profiles.md, 'Limits'"


class _TooBig(Exception):
    """A limit was passed at `node`; `text` says which."""

    def __init__(self, node: yaml.Node, text: str) -> None:
        super().__init__(text)
        self.node, self.text = node, text


def read_profile_bytes(path: Path) -> bytes:
    """The bytes of the regular file `path`, at most MAX_BYTES of them.

    Opens without blocking (a FIFO or a device never hangs us) and checks what was opened,
    not the path. Raises FileNotFoundError, IsADirectoryError, NotADirectoryError or another
    OSError as `open` would, and ProfileError for a file that is not regular or too big.
    """
    source = str(path)
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC | os.O_NOCTTY)
    try:
        info = os.fstat(fd)
        if stat.S_ISDIR(info.st_mode):
            raise IsADirectoryError(21, "Is a directory", source)
        if not stat.S_ISREG(info.st_mode):
            what = "a FIFO" if stat.S_ISFIFO(info.st_mode) else "a device or socket"
            raise ProfileError(
                source, [f"{source} is {what}, not a regular file: a profile is a YAML file"]
            )
        if info.st_size > MAX_BYTES:
            raise ProfileError(source, [_too_big(source, info.st_size)])
        chunks, total = [], 0
        while total <= MAX_BYTES:
            chunk = os.read(fd, MAX_BYTES + 1 - total)
            if not chunk:
                break
            chunks.append(chunk)
            total += len(chunk)
    finally:
        os.close(fd)
    if total > MAX_BYTES:  # it grew while we read it
        raise ProfileError(source, [_too_big(source, total)])
    return b"".join(chunks)


def _too_big(source: str, size: int) -> str:
    return (
        f"{source} is {size} bytes: a profile may be at most {MAX_BYTES} bytes "
        f"(1 MiB; {_LIMITS_HINT})"
    )


def check_text_size(text: str, source: str) -> None:
    """Raises ProfileError if `text` is longer than a profile file may be."""
    if len(text) > MAX_BYTES:
        raise ProfileError(source, [_too_big(source, len(text.encode("utf-8", "replace")))])


class Tree:
    """Plain data built from composed YAML nodes, remembering the node of every key and value.

    Building counts what it makes: an alias is expanded each time it is used, so a few
    hundred bytes of nested aliases would otherwise become billions of values.
    """

    def __init__(self, loader: yaml.SafeLoader, *, places: bool = True) -> None:
        """`places=False`: remember no nodes (`node()` then knows none): a profile that
        turns out valid never needs them, and a thousand services have 9000."""
        self.loader = loader
        self.places = places
        self.values: dict[tuple[Any, ...], yaml.Node] = {}
        self.keys: dict[tuple[Any, ...], yaml.Node] = {}
        self.problems: list[Located] = []
        self._open: set[int] = set()
        self._seen: set[int] = set()
        self._built = 0
        self._aliased = 0
        self._merged: dict[int, int] = {}

    def build(self, node: yaml.Node, path: tuple[Any, ...]) -> Any:
        self._count(node, path)
        if self.places:
            self.values[path] = node
        if node.tag == _STR and type(node) is yaml.ScalarNode:
            return node.value  # what the constructor makes of a string, at a third of the cost
        if id(node) in self._open:
            raise ConstructorError(
                None, None, "an alias refers to a node that contains it", node.start_mark
            )
        self._open.add(id(node))
        try:
            if isinstance(node, yaml.MappingNode) and node.tag == _MAP:
                return self._mapping(node, path)
            if isinstance(node, yaml.SequenceNode) and node.tag == _SEQ:
                return [self.build(item, (*path, i)) for i, item in enumerate(node.value)]
            if isinstance(node, yaml.CollectionNode):
                # Another tag (!!set, !!omap): its items count too, and it may not nest.
                self._count_collection(node, path)
            return self.loader.construct_object(node, deep=True)
        finally:
            self._open.discard(id(node))

    def _count(self, node: yaml.Node, path: tuple[Any, ...]) -> None:
        self._built += 1
        if id(node) in self._seen:
            self._aliased += 1
        self._seen.add(id(node))
        if len(path) > MAX_DEPTH:
            raise _TooBig(node, f"mappings and lists nest more than {MAX_DEPTH} levels deep")
        if self._aliased > MAX_ALIASED:
            raise _TooBig(
                node,
                f"aliases (`*name`, `<<: *name`) expand to more than {MAX_ALIASED} values: "
                "a profile this repetitive is refused",
            )
        if self._built > MAX_NODES:
            raise _TooBig(node, f"the profile holds more than {MAX_NODES} values")

    def _count_collection(self, node: yaml.CollectionNode, path: tuple[Any, ...]) -> None:
        for item in node.value:
            for sub in item if isinstance(item, tuple) else (item,):
                self._count(sub, (*path, None))
                if isinstance(sub, yaml.CollectionNode):
                    raise _TooBig(sub, "a tagged collection (`!!set`, `!!omap`) may not nest")

    def _merged_size(self, node: yaml.Node, depth: int = 0) -> int:
        """How many entries `node` has once its merges (`<<:`) are flattened, memoised."""
        if not isinstance(node, yaml.MappingNode) or depth > MAX_DEPTH:
            return 1
        if id(node) not in self._merged:
            self._merged[id(node)] = 0  # a merge cycle counts as nothing; PyYAML reports it
            total = 0
            for key, value in node.value:
                if key.tag != _MERGE:
                    total += 1
                elif isinstance(value, yaml.SequenceNode):
                    total += sum(self._merged_size(v, depth + 1) for v in value.value)
                else:
                    total += self._merged_size(value, depth + 1)
                if total > MAX_ALIASED:
                    raise _TooBig(
                        node, f"merges (`<<: *name`) expand to more than {MAX_ALIASED} values"
                    )
            self._merged[id(node)] = total
        return self._merged[id(node)]

    def _mapping(self, node: yaml.MappingNode, path: tuple[Any, ...]) -> dict[Any, Any]:
        explicit: set[int] | None = None  # None: every key is written here, none merged
        if any(k.tag in _FLATTENED for k, _ in node.value):
            explicit = {id(k) for k, _ in node.value if k.tag != _MERGE}
            self._merged_size(node)  # before flattening copies merged entries into this node
            self.loader.flatten_mapping(node)  # `<<: *anchor` merges; explicit keys come last
        result: dict[Any, Any] = {}
        first: dict[Any, yaml.Node] = {}
        for key_node, value_node in node.value:
            if key_node.tag == _STR and type(key_node) is yaml.ScalarNode:
                key = key_node.value  # (the usual key, made as `build` makes a string)
            elif isinstance(key_node, yaml.CollectionNode):
                self.problems.append((key_node, path, "a key must be plain text, not a collection"))
                continue
            else:
                key = self.loader.construct_object(key_node, deep=True)
            if not isinstance(key, Hashable):
                self.problems.append((key_node, path, "a key must be plain text, not a collection"))
                continue
            # PyYAML keeps the last of two equal keys without a word: a typo'd copy-paste
            # would silently win, so it is an error (keys brought in by a merge may repeat).
            if explicit is None or id(key_node) in explicit:
                if key in first:
                    line = first[key].start_mark.line + 1
                    message = f"duplicate key (also on line {line}); YAML would keep only this one"
                    self.problems.append((key_node, (*path, key), message))
                first[key] = key_node
            if self.places:
                self.keys[(*path, key)] = key_node
            result[key] = self.build(value_node, (*path, key))
        return result

    def node(self, path: tuple[Any, ...], *, key: bool = False) -> yaml.Node:
        if not self.places:
            raise ValueError("this tree remembers no nodes (places=False)")
        if key and path in self.keys:
            return self.keys[path]
        while path not in self.values:
            path = path[:-1]
        return self.values[path]


def parse(
    text: str,
    source: str,
    loader_class: type[yaml.SafeLoader] = yaml.SafeLoader,
    *,
    places: bool = True,
) -> tuple[Any, Tree]:
    """YAML `text` as plain data and its Tree of nodes. Raises ProfileError (with FILE:LINE:COL).

    `loader_class` may be libyaml's CSafeLoader: the same nodes and marks, parsed in C.
    `places=False`: the tree remembers no node (see Tree); its limits and problems stand.
    """
    check_text_size(text, source)
    loader = None
    try:
        loader = loader_class(text)
        node = loader.get_single_node()
        if node is None:
            need = "a profile needs at least `name:` and `services:`"
            raise ProfileError(source, [f"{source}:1:1 the file is empty: {need}"])
        tree = Tree(loader, places=places)
        return tree.build(node, ()), tree
    except _TooBig as exc:
        mark = exc.node.start_mark
        where = f"{source}:{mark.line + 1}:{mark.column + 1}"
        raise ProfileError(source, [f"{where} {exc.text} ({_LIMITS_HINT})"]) from None
    except yaml.MarkedYAMLError as exc:
        raise ProfileError(source, [yaml_problem(source, exc)]) from None
    except RecursionError:
        raise ProfileError(source, [f"{source} nests mappings and lists too deeply"]) from None
    except yaml.YAMLError as exc:  # a ReaderError: a character YAML does not allow
        at, char = getattr(exc, "position", 0), getattr(exc, "character", 0)
        line, col = text.count("\n", 0, at) + 1, at - text.rfind("\n", 0, at)
        what = f"character U+{char:04X} is not allowed in YAML" if isinstance(char, int) else exc
        problem = f"{source}:{line}:{col} {what}: write it as an escape in double quotes"
        raise ProfileError(source, [problem]) from None
    finally:
        if loader is not None:
            loader.dispose()


def yaml_problem(source: str, exc: yaml.MarkedYAMLError) -> str:
    """A YAML syntax error as one FILE:LINE:COL sentence."""
    mark = exc.problem_mark or exc.context_mark
    where = f"{source}:{mark.line + 1}:{mark.column + 1}" if mark else source
    problem = exc.problem or "this is not valid YAML"
    if "'\\t'" in problem or "tab" in problem:
        text = "a tab character: YAML indents with spaces only, so replace the tab with spaces"
    elif "another document" in problem:
        text = "a second YAML document (after `---`): a profile is one document"
    elif problem == "mapping values are not allowed here":
        text = (
            "YAML syntax: a `:` where none can be (a value containing `: ` must be quoted, "
            "or the indentation is off)"
        )
    else:
        text = f"YAML syntax: {problem}"
        if exc.context and exc.context_mark:
            ctx = exc.context_mark
            text += f" ({exc.context} at {ctx.line + 1}:{ctx.column + 1})"
    return f"{where} {text}"
