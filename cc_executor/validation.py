"""Pydantic validation errors as sentences a person reads: ``timeout_s: must be at most 604800 seconds``.

pydantic's own text (``1 validation error for execute_taskArguments ... [type=less_than_equal, input_value=...]``)
is written for the programmer of the model, repeats the rejected value and links to a website. Every front end
(library InvalidRequestError, the MCP tool layer, the CLI) renders it through ``describe_validation_error``
instead: one clause per problem, each starting with the field's path (``tasks[1].cwd``), joined with "; ".
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from pydantic import ValidationError

__all__ = ["describe_validation_error", "field_path", "problem_text"]

_UNION_TAGS = ("function-after[", "function-before[", "function-wrap[", "nullable[", "union[", "json-or-python[")
_SIMPLE = {
    "missing": "is required",
    "missing_argument": "is required",
    "string_type": "must be a string",
    "int_type": "must be an integer",
    "int_parsing": "must be an integer",
    "int_from_float": "must be a whole number",
    "float_type": "must be a number",
    "float_parsing": "must be a number",
    "finite_number": "must be a finite number",
    "bool_type": "must be true or false",
    "bool_parsing": "must be true or false",
    "list_type": "must be a list",
    "dict_type": "must be an object",
    "model_type": "must be an object",
    "model_attributes_type": "must be an object",
    "extra_forbidden": "is not a known option",
    "unexpected_keyword_argument": "is not a known option",
    "string_unicode": "must be valid Unicode text",
    "none_required": "must be null",
}


def describe_validation_error(exc: ValidationError, *, limit: int = 5) -> str:
    """One sentence per problem (at most ``limit``), each naming the field: ``task: must not be empty``."""
    problems = _unique(f"{field_path(e.get('loc', ()))}: {_without_name(e)}" for e in exc.errors())
    shown = problems[:limit]
    more = f"; and {len(problems) - limit} more problem(s)" if len(problems) > limit else ""
    return "; ".join(shown) + more


def _without_name(error: Mapping[str, Any]) -> str:
    """A validator's own message may start with the field's name ("json_schema must describe an object"); the
    sentence already starts with it, so it is said once."""
    text = problem_text(error)
    names = [part for part in error.get("loc", ()) if isinstance(part, str)]
    if names and text.startswith(names[-1] + " "):
        return text[len(names[-1]) + 1 :]
    return text


def field_path(loc: Sequence[str | int]) -> str:
    """``("tasks", 1, "cwd")`` → ``tasks[1].cwd``; pydantic's union/validator tags are dropped."""
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        elif part.startswith(_UNION_TAGS) or part in ("str", "int", "float", "bool", "list", "dict", "none"):
            continue
        else:
            out += f".{part}" if out else part
    return out or "input"


def problem_text(error: Mapping[str, Any]) -> str:
    """What is wrong, without the field name: ``must be at most 604800 seconds``."""
    kind = str(error.get("type", ""))
    ctx: Mapping[str, Any] = error.get("ctx") or {}
    unit = _unit(error.get("loc", ()))
    if kind in _SIMPLE:
        return _SIMPLE[kind]
    if kind == "value_error" or kind == "assertion_error":
        return _lower_first(str(ctx.get("error", error.get("msg", "is invalid"))))
    bound = _bound(kind, ctx, unit)
    if bound is not None:
        return bound
    if kind in ("literal_error", "enum"):
        return f"must be one of {ctx.get('expected', '?')}"
    msg = str(error.get("msg", "is invalid")).removeprefix("Value error, ")
    if msg.startswith("Input should be "):
        return "must be " + msg.removeprefix("Input should be ")
    return _lower_first(msg)


def _bound(kind: str, ctx: Mapping[str, Any], unit: str) -> str | None:
    comparisons = {
        "greater_than": ("gt", "must be greater than"),
        "greater_than_equal": ("ge", "must be at least"),
        "less_than": ("lt", "must be less than"),
        "less_than_equal": ("le", "must be at most"),
    }
    if kind in comparisons:
        key, words = comparisons[kind]
        return f"{words} {_number(ctx.get(key))}{unit}"
    if kind == "string_too_short":
        least = int(ctx.get("min_length", 1))
        return "must not be empty" if least <= 1 else f"must be at least {least} characters"
    if kind == "string_too_long":
        return f"must be at most {ctx.get('max_length')} characters"
    if kind == "too_short":
        least = int(ctx.get("min_length", 1))
        return "must not be empty" if least <= 1 else f"must have at least {least} items"
    if kind == "too_long":
        return f"must have at most {ctx.get('max_length')} items (got {ctx.get('actual_length')})"
    return None


def _unit(loc: Sequence[str | int]) -> str:
    names = [part for part in loc if isinstance(part, str)]
    name = names[-1] if names else ""
    if name.endswith("_s") or name in ("timeout", "idle_timeout"):
        return " seconds"
    if name.endswith("_usd"):
        return " US dollars"
    return ""


def _number(value: Any) -> str:
    return f"{value:g}" if isinstance(value, float) else str(value)


def _lower_first(text: str) -> str:
    # "Input should be ..." style messages start upper case; ours ("'x' is not ...") keep theirs.
    return text[:1].lower() + text[1:] if text[:1].isupper() and not text[1:2].isupper() else text


def _unique(items: Iterable[str]) -> list[str]:
    seen: dict[str, None] = {}
    for item in items:
        seen.setdefault(item, None)
    return list(seen)
