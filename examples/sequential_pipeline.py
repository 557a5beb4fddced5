"""A sequential pipeline: each step sees what the earlier steps produced (cc_execute_list, sequential=True).

python examples/sequential_pipeline.py            # offline, scripted fake API
python examples/sequential_pipeline.py --real     # your Claude login
"""

from __future__ import annotations

import anyio
from _common import example_config, parse_args, show, workdir

from cc_executor import cc_execute_list
from cc_executor.testing.fake_api import Scenario, Text, ToolUse

CSV = "city,temp\nOslo,4\nLisbon,19\nCairo,31\n"
ANALYZE = """import csv
rows = list(csv.DictReader(open("data.csv")))
temps = [int(r["temp"]) for r in rows]
print(f"{len(rows)} cities, mean {sum(temps) / len(temps):.1f}, hottest {max(rows, key=lambda r: int(r['temp']))['city']}")
"""

TASKS = [
    "Step 1: create data.csv with a header city,temp and three cities with temperatures.",
    "Step 2: write analyze.py that reads data.csv and prints the count, mean and hottest city.",
    "Step 3: run analyze.py and report its output.",
]

ROUTES = {
    "Step 1:": Scenario(
        [ToolUse("Write", {"file_path": "{cwd}/data.csv", "content": CSV}), Text("data.csv has 3 cities")]
    ),
    "Step 2:": Scenario(
        [ToolUse("Write", {"file_path": "{cwd}/analyze.py", "content": ANALYZE}), Text("analyze.py written")]
    ),
    "Step 3:": Scenario(
        [
            ToolUse("Bash", {"command": "python3 analyze.py", "description": "run the analysis"}),
            Text("3 cities, mean 18.0"),
        ]
    ),
}


async def main() -> int:
    args = parse_args(__doc__ or "")
    async with workdir(args.cwd) as cwd, example_config(args.real, ROUTES, allowed_tools=["Bash", "Write"]) as config:
        result = await cc_execute_list(TASKS, config=config, cwd=cwd, on_progress=show)
        for entry in result.entries:
            summary = entry.result.summary if entry.result else ""
            print(f"{entry.index}. {entry.status.value:8} {summary}")
        print(f"files created: {', '.join(result.files_created)}; cost ${result.cost_usd:.4f}")
        return 0 if result.status == "success" else 1


if __name__ == "__main__":
    raise SystemExit(anyio.run(main))
