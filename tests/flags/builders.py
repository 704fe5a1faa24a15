"""Flag and segment specs for tests: plain dicts with defaults you can override."""

from typing import Any

from apps.flags.engine import Snapshot, compile_snapshot


def boolean_spec(key: str, **overrides: Any) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "key": key,
        "name": key,
        "description": "",
        "type": "boolean",
        "variants": {"on": True, "off": False},
        "json_schema": None,
        "enabled": True,
        "default_variant": "on",
        "off_variant": "off",
        "rules": [],
        "requires": [],
        "conflicts": [],
        "tags": [],
        "owner": "",
        "protected": False,
        "requires_approval": False,
        "expires_at": None,
        "archived": False,
        "version": 1,
    }
    spec.update(overrides)
    return spec


def flag_data(**overrides: Any) -> dict[str, Any]:
    """The writable fields of a boolean flag (for flag_create)."""
    spec = boolean_spec("unused", **overrides)
    del spec["key"], spec["version"]
    return spec


def rule(*conditions: dict[str, Any], **fields: Any) -> dict[str, Any]:
    return {"conditions": list(conditions), "serve": {"variant": "on"}, **fields}


def cond(attribute: str, operator: str, value: Any = None, **fields: Any) -> dict:
    key = "values" if isinstance(value, list) else "value"
    return {"attribute": attribute, "operator": operator, key: value, **fields}


def snapshot_of(*specs: dict[str, Any], segments: tuple = ()) -> Snapshot:
    return compile_snapshot(specs, segments, version="test")
