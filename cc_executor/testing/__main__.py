"""`python -m cc_executor.testing --scenario demo`: serve the fake Messages API on loopback (prints its URL)."""

from __future__ import annotations

import argparse
import contextlib
import sys

import anyio

from cc_executor.testing import scenarios
from cc_executor.testing.fake_api import FakeAnthropic


async def _serve_forever(scenario_name: str, port: int) -> None:
    async with FakeAnthropic(scenarios.by_name(scenario_name), port=port) as fake:
        sys.stderr.write(f"fake Messages API on {fake.base_url} (scenario {scenario_name})\n")
        sys.stdout.write(f"{fake.base_url}\n")
        sys.stdout.flush()
        await anyio.sleep_forever()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Serve the scripted fake Anthropic Messages API on loopback.")
    parser.add_argument("--scenario", default="text", help="a scenario name from cc_executor.testing.scenarios")
    parser.add_argument("--port", type=int, default=0)
    args = parser.parse_args(argv)
    with contextlib.suppress(KeyboardInterrupt):
        anyio.run(_serve_forever, args.scenario, args.port)


if __name__ == "__main__":
    main()
