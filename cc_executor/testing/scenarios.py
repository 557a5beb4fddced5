"""Ready-made scenarios for the fake Messages API (tests, the offline demo and benchmarks)."""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from typing import Any

from cc_executor.testing.fake_api import ApiError, Scenario, Text, ToolUse

__all__ = [
    "ApiError",
    "Scenario",
    "Text",
    "ToolUse",
    "api_error",
    "bash",
    "by_name",
    "demo",
    "large_text",
    "silent",
    "slow",
    "structured",
    "text",
    "tool",
    "usage_limit",
    "write_file",
    "write_then_edit",
]


def text(reply: str = "hello from fake", *, delay_s: float = 0.0) -> Scenario:
    return Scenario([Text(reply, delay_s=delay_s)])


def tool(name: str, tool_input: Mapping[str, Any], final: str = "done") -> Scenario:
    return Scenario([ToolUse(name, tool_input), Text(final)])


def write_file(relative_path: str, content: str, final: str | None = None) -> Scenario:
    return tool("Write", {"file_path": "{cwd}/" + relative_path, "content": content}, final or f"wrote {relative_path}")


def write_then_edit(relative_path: str, content: str, old: str, new: str) -> Scenario:
    path = "{cwd}/" + relative_path
    return Scenario(
        [
            ToolUse("Write", {"file_path": path, "content": content}),
            ToolUse("Edit", {"file_path": path, "old_string": old, "new_string": new}),
            Text(f"created and edited {relative_path}"),
        ]
    )


def bash(command: str, final: str = "ran it") -> Scenario:
    return tool("Bash", {"command": command, "description": "run a command"}, final)


def slow(steps: int = 3, seconds: float = 1.0, final: str = "all steps done") -> Scenario:
    """A multi-step run: each turn runs ``sleep S && echo step i`` through the Bash tool."""
    calls: list[Text | ToolUse | ApiError] = [
        ToolUse(
            "Bash",
            {"command": f"sleep {seconds:g} && echo step {i}", "description": f"step {i}"},
            preamble=f"Step {i} of {steps}.",
        )
        for i in range(1, steps + 1)
    ]
    return Scenario([*calls, Text(final)])


def structured(payload: Mapping[str, Any]) -> Scenario:
    """Answer through the StructuredOutput tool that ``--json-schema`` adds."""
    return Scenario([ToolUse("StructuredOutput", payload), Text(json.dumps(payload))])


def large_text(n_bytes: int) -> Scenario:
    line = "The quick brown fox jumps over the lazy dog. "
    return Scenario([Text((line * (n_bytes // len(line) + 1))[:n_bytes])])


def silent(seconds: float) -> Scenario:
    """The API takes ``seconds`` to answer, so the CLI prints nothing meanwhile."""
    return Scenario([Text("finally", delay_s=seconds)])


_ERROR_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    429: "rate_limit_error",
    500: "api_error",
    529: "overloaded_error",
}


def api_error(status: int, *, times: int = 1000, retry_after: float | None = None, then: str = "recovered") -> Scenario:
    """HTTP ``status`` for the first ``times`` requests, then a text reply."""
    error = ApiError(status, _ERROR_TYPES.get(status, "api_error"), f"fake {status} error", retry_after)
    return Scenario([Text(then)], fail_first=[error] * times)


def usage_limit(reset_epoch: int, *, times: int = 1000) -> Scenario:
    """The subscription message 'Claude AI usage limit reached|<epoch>'."""
    error = ApiError(429, "rate_limit_error", f"Claude AI usage limit reached|{reset_epoch}")
    return Scenario([Text("recovered")], fail_first=[error] * times)


def demo() -> Scenario:
    """The offline demo: look around, write a file, run it, report."""
    return Scenario(
        [
            ToolUse(
                "Bash",
                {"command": "sleep 1 && ls -la", "description": "look at the directory"},
                preamble="Let me look first.",
            ),
            ToolUse(
                "Write",
                {"file_path": "{cwd}/fizzbuzz.py", "content": _FIZZBUZZ},
                preamble="Now I'll write the program.",
            ),
            ToolUse(
                "Bash",
                {"command": "sleep 1 && python3 fizzbuzz.py | head -5", "description": "run it"},
                preamble="Let me run it.",
            ),
            ToolUse(
                "StructuredOutput",
                {"result": "fizzbuzz.py prints FizzBuzz for 1..15", "summary": "Wrote fizzbuzz.py and ran it."},
            ),
            Text("Wrote fizzbuzz.py and ran it."),
        ]
    )


_FIZZBUZZ = """for i in range(1, 16):
    print("FizzBuzz" if i % 15 == 0 else "Fizz" if i % 3 == 0 else "Buzz" if i % 5 == 0 else i)
"""

_NAMED: dict[str, Callable[[], Scenario]] = {
    "text": text,
    "demo": demo,
    "slow": slow,
    "write": lambda: write_file("hello.py", "print('hello')\n"),
}


def by_name(name: str) -> Scenario:
    try:
        return _NAMED[name]()
    except KeyError:
        raise ValueError(f"unknown scenario {name!r}; known: {', '.join(sorted(_NAMED))}") from None
