"""The YAML key toolkit: a file composed with the safe loader and read through tables of keys,
every error naming the file, the line and the dotted key (adapters layer).

``yaml.safe_load`` would drop the positions, so documents are composed and walked node by node.
A ``Key`` says how one key is read and what the generated docs say of it; ``record`` reads a
mapping with exactly the keys of its table (an unknown key is an error). Aliases and merge keys
are refused: these files are read by people, and an alias bomb must not cost memory. Policy
files, the daemon's configuration and ``authz.yaml`` are all read with it.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import Any

import yaml

from orchd.errors import OrchdError, PolicyInvalid

MAX_FILE_BYTES = 1 << 20
REQUIRED = "(required)"
INT_TAG = "tag:yaml.org,2002:int"
STR_TAG = "tag:yaml.org,2002:str"
NULL_TAG = "tag:yaml.org,2002:null"
BOOL_TAG = "tag:yaml.org,2002:bool"


@dataclass(frozen=True, slots=True)
class At:
    """Where a value is: file, line and dotted key, for error messages."""

    file: str
    line: int
    key: str

    def error(self, problem: str) -> PolicyInvalid:
        return PolicyInvalid(file=self.file, line=self.line, key=self.key, problem=problem)

    def under(self, key: str, node: yaml.Node) -> At:
        return At(self.file, node.start_mark.line + 1, f"{self.key}.{key}" if self.key else key)


Parse = Callable[[yaml.Node, At], Any]


@dataclass(frozen=True, slots=True, kw_only=True)
class Key:
    """One accepted key: how to read it, and what the generated docs say of it."""

    parse: Parse
    kind: str
    default: str
    example: str
    doc: str
    required: bool = False


def key(parse: Parse, kind: str, default: str, example: str, doc: str, **more: Any) -> Key:
    return Key(parse=parse, kind=kind, default=default, example=example, doc=doc, **more)


# --- scalar readers ----------------------------------------------------------------------------


def scalar(node: yaml.Node, at: At, tag: str, expected: str) -> Any:
    """The value of a scalar node of ``tag`` (an int tag is constructed); else an error."""
    if not isinstance(node, yaml.ScalarNode) or node.tag != tag:
        raise at.error(f"expected {expected}, got {describe(node)}")
    if tag != INT_TAG:
        return node.value
    try:
        return yaml.SafeLoader("").construct_yaml_int(node)
    except ValueError:
        raise at.error(f"{node.value!r} is not an integer") from None


def describe(node: yaml.Node) -> str:
    if isinstance(node, yaml.MappingNode):
        return "a mapping"
    if isinstance(node, yaml.SequenceNode):
        return "a list"
    kind = node.tag.rsplit(":", 1)[-1]
    return f"{kind} {node.value!r}" + (" (quote it to make it text)" if kind != "str" else "")


def checked(at: At, check: Callable[[], Any]) -> Any:
    """``check()``'s result; an orchd error it raises becomes an error at ``at``."""
    try:
        return check()
    except OrchdError as exc:
        raise at.error(exc.message) from None


def integer(low: int, high: int) -> Parse:
    def parse(node: yaml.Node, at: At) -> int:
        value: int = scalar(node, at, INT_TAG, f"an integer from {low} to {high}")
        if not low <= value <= high:
            raise at.error(f"{value} is out of range; expected {low} to {high}")
        return value

    return parse


def boolean(node: yaml.Node, at: At) -> bool:
    """``true`` or ``false``, written so (YAML 1.1's yes, no, on and off are refused: a value
    that reads as one thing and means another)."""
    if not isinstance(node, yaml.ScalarNode) or node.value not in ("true", "false"):
        raise at.error(f"expected true or false, got {describe(node)}")
    return bool(node.value == "true")


def choice(*options: str) -> Parse:
    def parse(node: yaml.Node, at: At) -> str:
        value: str = scalar(node, at, STR_TAG, "one of " + ", ".join(options))
        if value not in options:
            raise at.error(f"{value!r} is not one of {', '.join(options)}")
        return value

    return parse


def absolute_path(node: yaml.Node, at: At) -> str:
    value: str = scalar(node, at, STR_TAG, "an absolute path")
    if not value.startswith("/") or "\x00" in value:
        raise at.error(f"{value!r} is not an absolute path")
    return value


# --- collection readers ------------------------------------------------------------------------


def pairs(node: yaml.Node, at: At) -> list[tuple[str, yaml.Node, At]]:
    """A mapping's entries as (key, value node, position); keys text, never repeated."""
    if not isinstance(node, yaml.MappingNode):
        raise at.error(f"expected a mapping, got {describe(node)}")
    seen: set[str] = set()
    entries = []
    for key_node, value_node in node.value:
        key = scalar(key_node, at.under(str(key_node.value), key_node), STR_TAG, "a text key")
        if key in seen:
            raise at.under(key, key_node).error("given twice")
        seen.add(key)
        entries.append((key, value_node, at.under(key, key_node)))
    return entries


def items(node: yaml.Node, at: At) -> list[tuple[yaml.Node, At]]:
    if not isinstance(node, yaml.SequenceNode):
        raise at.error(f"expected a list, got {describe(node)}")
    return [
        (item, At(at.file, item.start_mark.line + 1, f"{at.key}[{i}]"))
        for i, item in enumerate(node.value)
    ]


def list_of(parse: Parse, *, min_items: int = 0) -> Parse:
    def read(node: yaml.Node, at: At) -> tuple[Any, ...]:
        values = tuple(parse(item, where) for item, where in items(node, at))
        if len(values) < min_items:
            raise at.error(f"expected at least {min_items} item(s)")
        return values

    return read


def map_of(key: Parse, value: Parse) -> Parse:
    def read(node: yaml.Node, at: At) -> Mapping[str, Any]:
        out = {}
        for name_, value_node, where in pairs(node, at):
            key(yaml.ScalarNode(STR_TAG, name_, start_mark=value_node.start_mark), where)
            out[name_] = value(value_node, where)
        return MappingProxyType(out)

    return read


def record(keys: Mapping[str, Key]) -> Parse:
    """A mapping with exactly these keys: unknown keys and missing required keys are errors."""

    def read(node: yaml.Node, at: At) -> dict[str, Any]:
        out: dict[str, Any] = {"@": at}
        for key, value_node, where in pairs(node, at):
            spec = keys.get(key)
            if spec is None:
                raise where.error(f"unknown key; expected one of {', '.join(keys)}")
            out[key] = spec.parse(value_node, where)
            out[f"@{key}"] = where
        for key, spec in keys.items():
            if spec.required and key not in out:
                raise at.error(f"{key} is required")
        return out

    return read


# --- files -------------------------------------------------------------------------------------


def read_document(path: Path, keys: Mapping[str, Key]) -> dict[str, Any]:
    """One YAML file read as a record of ``keys`` (PolicyInvalid names file, line and key)."""
    at = At(str(path), 1, "")
    try:
        if path.stat().st_size > MAX_FILE_BYTES:
            raise at.error(f"larger than {MAX_FILE_BYTES} bytes")
        data = path.read_bytes()
    except OSError as exc:
        raise at.error(f"cannot be read: {exc.strerror}") from None
    try:
        node = yaml.compose(data.decode("utf-8"), Loader=yaml.SafeLoader)
    except UnicodeDecodeError:
        raise at.error("not UTF-8 text") from None
    except yaml.MarkedYAMLError as exc:
        line = exc.problem_mark.line + 1 if exc.problem_mark else 1
        raise At(str(path), line, "").error(f"not valid YAML: {exc.problem}") from None
    except yaml.YAMLError as exc:
        raise at.error(f"not valid YAML: {exc}") from None
    except RecursionError:
        raise at.error("nested too deeply") from None
    if node is None:
        raise at.error("the file is empty; it needs at least version: 1")
    try:
        _refuse_aliases(node, at, set())
    except RecursionError:
        raise at.error("nested too deeply") from None
    document: dict[str, Any] = record(keys)(node, at)
    return document


def _refuse_aliases(node: yaml.Node, at: At, seen: set[int]) -> None:
    """Refuse a node met twice: an alias (``*name``) points back at an anchored node."""
    if isinstance(node, yaml.MappingNode):
        children = [(at.under(str(k.value), k), v) for k, v in node.value]
    elif isinstance(node, yaml.SequenceNode):
        children = [
            (At(at.file, v.start_mark.line + 1, f"{at.key}[{i}]"), v)
            for i, v in enumerate(node.value)
        ]
    else:
        return
    for where, child in children:
        if id(child) in seen:
            raise where.error("aliases (*name) are not allowed; write the value out")
        seen.add(id(child))
        _refuse_aliases(child, where, seen)
