"""drf-spectacular post-processing: make the schema say what the API enforces.

Every request serializer of the API refuses fields it does not know (a typo such as `txet` is a
400 naming it, not silently ignored), so every request body component is closed with
`additionalProperties: false`. Without this the schema would promise that any extra field is
accepted, and a client generated from it (or schemathesis) would be told otherwise by the server.
"""

from __future__ import annotations

from typing import Any


def close_request_bodies(result: dict[str, Any], generator: Any, request: Any, public: bool) -> dict[str, Any]:
    """Set `additionalProperties: false` on every object schema used as a request body."""
    schemas = result.get("components", {}).get("schemas", {})
    for name in _request_components(result):
        component = schemas.get(name)
        if component and component.get("type") == "object":
            component.setdefault("additionalProperties", False)
    return result


def _request_components(result: dict[str, Any]) -> set[str]:
    names: set[str] = set()
    for operations in result.get("paths", {}).values():
        for operation in operations.values():
            if not isinstance(operation, dict):
                continue
            for media in operation.get("requestBody", {}).get("content", {}).values():
                reference = media.get("schema", {}).get("$ref", "")
                if reference.startswith("#/components/schemas/"):
                    names.add(reference.rsplit("/", 1)[1])
    return names
