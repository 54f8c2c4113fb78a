"""Tool calls against their JSON schemas: the subset of JSON Schema that transformers'
``get_json_schema`` writes for a Python function, read from a record's ``available_tools``.

Why its own module: the agent graders (:mod:`graders._agent`) ask two things of a schema, is it
well formed (malformed data is ``invalid_input`` naming the field, never a 0) and do a call's
arguments fit it; both walk the same nested ``properties``, ``items``, ``prefixItems`` and
``additionalProperties``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

from graders._base import Unscored
from rm_service._result import plain_value

__all__ = ["check_arguments", "is_list", "tool_function", "tool_schemas"]

_JSON_TYPES: dict[str, tuple[type, ...]] = {
    "string": (str,),
    "integer": (int,),
    "number": (int, float),
    "boolean": (bool,),
    "array": (list, tuple),
    "object": (dict,),
    "null": (type(None),),
}


def is_list(value: Any) -> bool:
    """A JSON array: a list or tuple; a string or an object is not one, however iterable."""
    return isinstance(value, list | tuple)


def check_arguments(arguments: Any, schema: Mapping[str, Any] | None) -> str | None:
    """Why ``arguments`` do not fit the tool's JSON schema, or ``None`` when they do.

    The subset of JSON Schema that transformers' ``get_json_schema`` writes for a Python
    function: an object with typed ``properties``, ``required`` names, ``enum``, ``nullable``
    and, inside a property, ``items``, ``prefixItems`` and ``additionalProperties``. Unknown
    keys are invalid: Python would raise on an unexpected argument.
    The schema's shape was checked by :func:`tool_schemas`. With ``schema`` ``None`` only the
    arguments' shape is checked: arguments that are no object (text that was not JSON, a list)
    cannot call any tool, whatever its schema (``called_tool``'s test of a call)."""
    if not isinstance(arguments, Mapping):
        return f"arguments are {type(arguments).__name__}, not an object"
    if schema is None:
        return None
    params = schema.get("parameters") or {}
    return _check_object(arguments, params, closed=True, noun="argument")


def _check_object(
    value: Mapping[str, Any], spec: Mapping[str, Any], *, closed: bool, noun: str = "key"
) -> str | None:
    """Why an object does not fit ``spec``'s ``required``, ``properties`` and
    ``additionalProperties``. ``closed`` refuses keys no property names, whatever the schema
    says (a function's arguments: Python raises on one it does not take); a nested object
    admits them unless ``additionalProperties`` is false, and checks them against it when it
    is a schema."""
    props: Mapping[str, Any] = spec.get("properties") or {}
    missing = [p for p in spec.get("required") or [] if p not in value]
    if missing:
        return f"missing required {noun}(s) {missing}"
    extra = spec.get("additionalProperties", not closed)
    unknown = [k for k in value if k not in props]
    if unknown and (closed or extra is False):
        return f"unknown {noun}(s) {unknown}"
    for key, item in value.items():
        sub = props.get(key, extra)
        if sub is False:  # a boolean schema: false admits no value
            return f"{noun} {key!r} is not allowed (its schema is false)"
        why = _check_value(item, sub) if isinstance(sub, Mapping) else None
        if why is not None:
            return f"{noun} {key!r} is {why}"
    return None


def _check_value(value: Any, spec: Mapping[str, Any]) -> str | None:
    """Why one argument does not fit its property ``spec`` (its type, its ``enum``, the items
    of an array, the values of an object), or ``None``. A bool is no integer or number here,
    as in JSON Schema, and NaN or infinity is no number: JSON has neither, though Python's
    ``json.loads`` reads them, so a call could pass absurd values the tool never expects."""
    if value is None and spec.get("nullable"):
        return None
    types = spec.get("type")
    names = [types] if isinstance(types, str) else list(types or [])
    allowed = tuple(t for n in names for t in _JSON_TYPES.get(n, (object,)))
    bad_bool = isinstance(value, bool) and "boolean" not in names
    if allowed and (not isinstance(value, allowed) or bad_bool):
        return f"{type(value).__name__}, expected {types}"
    if isinstance(value, float) and not math.isfinite(value):
        return f"{value!r}, not a JSON number"
    if "enum" in spec and not _in_enum(value, spec["enum"]):
        return f"{value!r}, not one of {list(spec['enum'])}"
    if is_list(value):
        prefix = spec.get("prefixItems") or []
        for i, item in enumerate(value):
            sub = prefix[i] if i < len(prefix) else spec.get("items")
            if sub is False:  # "items": false closes a tuple after its prefixItems
                return f"an array with item {i}, which its schema does not allow"
            why = _check_value(item, sub) if isinstance(sub, Mapping) else None
            if why is not None:
                return f"an array whose item {i} is {why}"
    if isinstance(value, Mapping):
        why = _check_object(value, spec, closed=False)
        if why is not None:
            return f"an object whose {why}"
    return None


def _in_enum(value: Any, enum: Sequence[Any]) -> bool:
    """List membership, with ``True`` no match for ``1`` (Python's ``True == 1``)."""
    return any(value == e and isinstance(value, bool) == isinstance(e, bool) for e in enum)


def tool_function(item: Any) -> Mapping[str, Any] | None:
    """The function schema of one ``available_tools`` entry (OpenAI's nested form or the flat
    one; a numpy object from a parquet column is its Python value), or ``None``."""
    item = plain_value(item)
    return item.get("function", item) if isinstance(item, Mapping) else None


def tool_schemas(value: Any) -> dict[str, Mapping[str, Any]]:
    """The record's ``available_tools`` by name (a list, or a numpy array from a parquet
    column), each checked by :func:`_check_schema`."""
    value = plain_value(value)
    if not is_list(value):
        raise Unscored(f"available_tools must be a list of tool schemas, got {value!r}")
    out: dict[str, Mapping[str, Any]] = {}
    for i, schema in enumerate(value):
        function = tool_function(schema)
        if not isinstance(function, Mapping) or not isinstance(function.get("name"), str):
            raise Unscored(f"available_tools holds {schema!r}, not a tool schema with a name")
        _check_schema(function, f"available_tools[{i}] ({function['name']!r})")
        out[function["name"]] = function
    return out


def _check_schema(function: Mapping[str, Any], where: str) -> None:
    """Unscored (naming the field) unless the parts of a tool schema that the argument check
    reads have JSON Schema's shapes: a malformed schema is bad data, not a grader bug
    (``internal``) and not a verdict on the policy's call."""
    params = function.get("parameters")
    if params is None:
        return
    if not isinstance(params, Mapping):
        raise Unscored(f"{where}: parameters is {type(params).__name__}, not an object")
    _check_object_spec(params, f"{where}: parameters")


def _check_object_spec(spec: Mapping[str, Any], where: str) -> None:
    """Unscored unless an object spec's ``properties`` and ``required`` have their shapes."""
    props = spec.get("properties")
    if props is not None and not isinstance(props, Mapping):
        raise Unscored(f"{where}.properties is {type(props).__name__}, not an object")
    required = spec.get("required")
    if required is not None and not (
        is_list(required) and all(isinstance(r, str) for r in required)
    ):
        raise Unscored(f"{where}.required is {required!r}, not a list of names")
    for key, sub in (props or {}).items():
        _check_property(sub, f"{where}.properties.{key}")


def _check_property(spec: Any, where: str) -> None:
    """Unscored unless one property spec is an object whose ``type`` is a name or a list of
    names and whose ``enum`` is a list (a string enum would be tested as a substring); the
    specs nested in it (``items``, ``prefixItems``, ``properties``, ``additionalProperties``)
    are checked the same way, since the argument check reads them too. A boolean is JSON
    Schema's boolean schema (``true`` admits any value, ``false`` none: ``"items": false``
    closes a tuple), not a malformed one."""
    if isinstance(spec, bool):
        return
    if not isinstance(spec, Mapping):
        raise Unscored(f"{where} is {type(spec).__name__}, not a property schema object")
    types = spec.get("type")
    if types is not None and not (
        isinstance(types, str) or (is_list(types) and all(isinstance(t, str) for t in types))
    ):
        raise Unscored(f"{where}.type is {types!r}, not a type name or a list of them")
    if "enum" in spec and not is_list(spec["enum"]):
        raise Unscored(f"{where}.enum is {type(spec['enum']).__name__}, not a list")
    if spec.get("items") is not None:
        _check_property(spec["items"], f"{where}.items")
    prefix = spec.get("prefixItems")
    if prefix is not None and not is_list(prefix):
        raise Unscored(f"{where}.prefixItems is {type(prefix).__name__}, not a list")
    for i, sub in enumerate(prefix or []):
        _check_property(sub, f"{where}.prefixItems[{i}]")
    if spec.get("additionalProperties") is not None:
        _check_property(spec["additionalProperties"], f"{where}.additionalProperties")
    _check_object_spec(spec, where)
