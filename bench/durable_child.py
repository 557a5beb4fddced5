"""Helper of bench/durable.py: the rejected one-supervisor-per-state-dir design, approximated by one process that
runs 1, then 3, live runs in-process (LocalBackend). Prints {"uss_kib": [with 1 run, with 3 runs]}."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import anyio

from cc_executor.api import build_request
from cc_executor.backends.local import LocalBackend
from cc_executor.models import CCExecutorConfig
from cc_executor.testing import scenarios
from cc_executor.testing.fake_api import FakeAnthropic


def uss_kib() -> int:
    total = 0
    for line in Path("/proc/self/smaps_rollup").read_text().splitlines():
        if line.startswith(("Private_Clean:", "Private_Dirty:")):
            total += int(line.split()[1])
    return total


async def main(spec: dict[str, Any]) -> None:
    # The fake API runs here too; it is the same in both measurements, so it cancels out of the per-run growth.
    async with FakeAnthropic(scenarios.slow(steps=30, seconds=1)) as fake:
        env = {**spec["env"], "ANTHROPIC_BASE_URL": fake.base_url}
        config = CCExecutorConfig(env=env, claude_path=spec["claude"], model=spec["model"], allowed_tools=["Bash"])
        sizes = []
        async with LocalBackend(store_path=Path(spec["home"]) / "runs.db") as backend:
            ids: list[str] = []
            for wanted in (1, 3):
                while len(ids) < wanted:
                    ids.append(await backend.submit(build_request("job", config=config, cwd=spec["cwd"])))
                for run_id in ids:
                    with anyio.fail_after(60):
                        while "Bash" not in ((await backend.status(run_id)).last_progress or ""):  # noqa: ASYNC110
                            await anyio.sleep(0.05)
                await anyio.sleep(1)
                sizes.append(uss_kib())
            for run_id in ids:
                await backend.cancel(run_id, "benchmark done")
    print(json.dumps({"uss_kib": sizes}))


if __name__ == "__main__":
    anyio.run(main, json.loads(sys.argv[1]), backend="asyncio")
