"""One-line errors for YAML files checked by a pydantic schema (dataset configs; any config file of ours).

pydantic says ``loc=('label', 'positve')``; a person wants ``label.positve: unknown key (did you mean
'positive'?)``, spelled as written in the file, with what YAML made of the value (``Yes`` is a boolean).
These functions walk the parsed data and YAML's node tree side by side to say so. Standard library,
PyYAML and pydantic only, like the rest of ``common/``.
"""

from __future__ import annotations

import difflib
import typing
from typing import Any

import yaml

if typing.TYPE_CHECKING:
    from pydantic import BaseModel


def yaml_kind(value: Any) -> str:
    if value is None:
        return "nothing (an empty value)"
    if isinstance(value, bool):
        return "a YAML boolean"
    if isinstance(value, int | float):
        return "a YAML number"
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, str):
        return f"the string {value!r}"
    return f"a YAML {type(value).__name__}"


def node_at(root: yaml.Node | None, raw: Any, loc: tuple[Any, ...]) -> tuple[str, yaml.Node | None]:
    """The key path of a pydantic error location, spelled as in the file, and the YAML node there.

    Walks the parsed data and the YAML node tree side by side (keys in file order; duplicate
    keys were refused before), so a key or value is shown as it was written.
    """
    path = parent = ""
    node, value, key_node = root, raw, None
    for part in loc:
        if part == "[key]":
            return parent, key_node
        parent = path
        if isinstance(value, dict) and isinstance(node, yaml.MappingNode):
            keys = list(value)
            index = next((i for i, k in enumerate(keys) if k == part and type(k) is type(part)), None)
            if index is None:
                index = next((i for i, k in enumerate(keys) if k == part), None)
            if index is None or index >= len(node.value):
                path += f".{part}" if path else str(part)
                node, value = None, None
                continue
            key_node, node = node.value[index]
            spelled = key_node.value if isinstance(key_node, yaml.ScalarNode) else str(part)
            path += f".{spelled}" if path else spelled
            value = value[keys[index]]
        elif isinstance(value, list) and isinstance(part, int) and isinstance(node, yaml.SequenceNode):
            path += f"[{part}]"
            node = node.value[part] if part < len(node.value) else None
            value = value[part] if part < len(value) else None
        else:
            path += f".{part}" if path else str(part)
            node, value = None, None
    return path, node


def known_keys(schema: type[BaseModel], loc: tuple[Any, ...]) -> list[str]:
    """The keys ``schema`` allows in the mapping at `loc`."""
    model: Any = schema
    parts = list(loc)
    while parts:
        if typing.get_origin(model) is dict:  # dict[str, X]: skip the key, look in X
            model = typing.get_args(model)[1]
            parts.pop(0)
            continue
        fields = getattr(model, "model_fields", None)
        part = parts.pop(0)
        if not fields or part not in fields:
            return []
        model = fields[part].annotation
    return list(getattr(model, "model_fields", {}))


def describe_error(error: dict[str, Any], raw: Any, root: yaml.Node | None, schema: type[BaseModel]) -> str:
    """One pydantic error as one line: the key path as written in the file, and what is wrong there."""
    loc = tuple(error["loc"])
    kind, value = error["type"], error.get("input")
    if kind == "extra_forbidden":
        path, _ = node_at(root, raw, loc)
        known = known_keys(schema, loc[:-1])
        close = difflib.get_close_matches(str(loc[-1]), known, n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        return f"{path}: unknown key{hint}; allowed here: {', '.join(known)}"
    if kind == "missing":
        path, _ = node_at(root, raw, loc)
        return f"{path}: required key is missing"
    path, node = node_at(root, raw, loc)
    is_key = bool(loc) and loc[-1] == "[key]"
    spelled = node.value if isinstance(node, yaml.ScalarNode) else None
    quote = f' (quote it: "{spelled}")' if spelled is not None and isinstance(value, bool | int | float) else ""
    what = f"{path or '(top level)'}: key {spelled if spelled is not None else value!r}" if is_key else path
    if kind == "string_type":
        return f"{what}: must be a string, got {yaml_kind(value)}{quote}"
    if kind == "string_too_short":
        return f"{what}: must not be empty"
    if kind in ("float_type", "int_type", "float_parsing"):
        return f"{what}: must be a number, got {yaml_kind(value)}"
    if kind == "dict_type":
        return f"{what}: must be a mapping (key: value), got {yaml_kind(value)}"
    if kind == "list_type":
        return f"{what}: must be a list ([a, b, ...]), got {yaml_kind(value)}"
    if kind == "model_type":
        return f"{what}: must be a mapping (key: value), got {yaml_kind(value)}"
    if kind == "literal_error":
        allowed = error.get("ctx", {}).get("expected", "")
        noun = "transform" if loc and loc[-1] == "transform" else "value"
        return f"{what}: unknown {noun} {value!r} (known: {allowed.replace(chr(39), '')})"
    if kind == "value_error":
        return f"{what}: {error.get('ctx', {}).get('error', error['msg'])}"
    return f"{what}: {error['msg']}"


def duplicate_key(node: yaml.Node | None, path: str = "") -> str | None:
    """The first mapping key written twice (YAML would silently keep the last), as a message."""
    if isinstance(node, yaml.MappingNode):
        seen: dict[str, int] = {}
        for key_node, value_node in node.value:
            spelled = key_node.value if isinstance(key_node, yaml.ScalarNode) else str(key_node)
            here = f"{path}.{spelled}" if path else spelled
            if spelled in seen:
                return (
                    f"{here}: key is written twice (lines {seen[spelled]} and {key_node.start_mark.line + 1}); "
                    "YAML would keep only the last"
                )
            seen[spelled] = key_node.start_mark.line + 1
            found = duplicate_key(value_node, here)
            if found:
                return found
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            found = duplicate_key(item, f"{path}[{i}]")
            if found:
                return found
    return None


def find_scalar(root: yaml.Node | None, keys: tuple[str, ...]) -> yaml.Node | None:
    node = root
    for key in keys:
        if not isinstance(node, yaml.MappingNode):
            return None
        node = next((v for k, v in node.value if isinstance(k, yaml.ScalarNode) and k.value == key), None)
    return node
