"""JSON Schema checks for structured output: the caller's schema up front, the model's reply after."""

from __future__ import annotations

from typing import Any

import jsonschema
import jsonschema.exceptions

# The seed's return_json shape; files and the uuid come from the harness, not from the model.
SEED_RESULT_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "result": {"type": "string", "description": "The outcome of the task, complete and self-contained."},
        "summary": {"type": "string", "description": "One or two sentences on what was done."},
    },
    "required": ["result", "summary"],
}


def check_schema(schema: dict[str, Any]) -> None:
    """Raise ValueError naming the problem when ``schema`` is not a usable JSON Schema object."""
    if not isinstance(schema, dict):
        raise ValueError("json_schema must be a JSON object")
    if schema.get("type", "object") != "object":
        raise ValueError('json_schema must describe an object ("type": "object")')
    validator = jsonschema.validators.validator_for(schema, default=jsonschema.Draft202012Validator)
    try:
        validator.check_schema(schema)
    except jsonschema.exceptions.SchemaError as exc:
        where = "/".join(str(p) for p in exc.absolute_path) or "(root)"
        raise ValueError(f"json_schema is invalid at {where}: {exc.message}") from None


def reply_error(schema: dict[str, Any], value: Any) -> str | None:
    """None if ``value`` matches ``schema``, else a one-line description of the first mismatch."""
    validator_cls = jsonschema.validators.validator_for(schema, default=jsonschema.Draft202012Validator)
    error = jsonschema.exceptions.best_match(validator_cls(schema).iter_errors(value))
    if error is None:
        return None
    where = "/".join(str(p) for p in error.absolute_path) or "(root)"
    return f"structured output does not match json_schema at {where}: {error.message}"
