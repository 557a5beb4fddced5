"""Helper process for the memory benchmark: one ``cc_execute`` of tests/fake_claude.py in huge_line mode.

    python bench/rss_child.py LINE_MB MAX_LINE_BYTES CWD

Prints one JSON line: this process's RSS before the run and its peak (VmHWM, and getrusage's ru_maxrss), in KiB.
CC_EXECUTOR_HOME must point at a scratch state dir.
"""

from __future__ import annotations

import json
import resource
import sys
from pathlib import Path

import anyio

from cc_executor import CCExecutorConfig, cc_execute
from cc_executor.engine.events import AssistantText, Event, OversizedLine

FAKE_CLAUDE = str(Path(__file__).resolve().parents[1] / "tests" / "fake_claude.py")


def status_kib(field: str) -> int:
    """A /proc/self/status figure in KiB: VmRSS (now) or VmHWM (this address space's peak, not inherited)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    return 0


def file_size(path: str | None) -> int:
    return Path(path).stat().st_size if path and Path(path).is_file() else 0


async def main(line_mb: str, max_line_bytes: int, cwd: str) -> dict[str, object]:
    env = {"FAKE_CLAUDE_MODE": "huge_line", "FAKE_CLAUDE_LINE_MB": line_mb}
    config = CCExecutorConfig(claude_path=FAKE_CLAUDE, env=env, max_line_bytes=max_line_bytes, kill_grace_s=0.5)
    seen: dict[str, int] = {"oversized": 0, "text_bytes": 0}

    def on_event(event: Event) -> None:
        if isinstance(event, OversizedLine):
            seen["oversized"] += 1
        elif isinstance(event, AssistantText):
            seen["text_bytes"] += len(event.text)

    before = status_kib("VmRSS")
    result = await cc_execute("big", config=config, cwd=cwd, on_event=on_event)
    return {
        "ok": result.ok and result.result == "fake huge line done",
        "before_kib": before,
        "hwm_kib": status_kib("VmHWM"),
        "ru_maxrss_kib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
        "oversized_lines": seen["oversized"],
        "parsed_text_bytes": seen["text_bytes"],
        "transcript_bytes": file_size(result.transcript_path),
    }


if __name__ == "__main__":
    report = anyio.run(main, sys.argv[1], int(sys.argv[2]), sys.argv[3], backend="asyncio")
    print(json.dumps(report))
    sys.exit(0 if report["ok"] else 1)
