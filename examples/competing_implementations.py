"""Competing implementations: three Claude instances implement the same file in parallel, each in its own git
worktree and branch (so they cannot overwrite each other), then a judge compares the branches by running one
check against each, and the winner is merged back; the losers are discarded.

    python examples/competing_implementations.py            # offline, scripted fake API
    python examples/competing_implementations.py --real     # your Claude login
"""

from __future__ import annotations

import anyio
from _common import ensure_repo, example_config, parse_args, show, workdir

from cc_executor import ListTask, cc_execute, cc_execute_list, discard_run, merge_run
from cc_executor.testing.fake_api import Scenario, Text, ToolUse

STYLES = {
    "regex": "with a regular expression",
    "translate": "with str.translate and split",
    "loop": "character by character",
}
CODE = {
    "regex": "import re\n\ndef slugify(s):\n    return re.sub(r'[^a-z0-9]+', '-', s.lower()).strip('-')\n",
    "translate": (
        "import string\n\ndef slugify(s):\n"
        "    table = str.maketrans({c: ' ' for c in string.punctuation})\n"
        "    return '-'.join(s.lower().translate(table).split())\n"
    ),
    "loop": (
        "def slugify(s):\n    out, dash = [], False\n    for ch in s.lower():\n"
        "        if ch.isalnum():\n            out.append(ch); dash = False\n"
        "        elif not dash and out:\n            out.append('-'); dash = True\n"
        "    return ''.join(out).strip('-')\n"
    ),
}
BRANCHES = {name: f"contest/{name}" for name in STYLES}
# The judge reads each contender's slugify.py straight from its branch and runs the same cases on it.
CHECK = (
    "for b in " + " ".join(BRANCHES.values()) + '; do git show "$b:slugify.py" > "cand_${b#contest/}.py"; done; '
    "python3 -c \"import importlib; cases={'Hello, World!': 'hello-world', '  a  b ': 'a-b'}; "
    "print({n: all(importlib.import_module('cand_' + n).slugify(k) == v for k, v in cases.items()) "
    "for n in ('regex', 'translate', 'loop')})\""
)
JUDGE_SCHEMA = {
    "type": "object",
    "properties": {"winner": {"type": "string"}, "reasons": {"type": "string"}},
    "required": ["winner", "reasons"],
}

ROUTES = {
    **{
        f"Contender {name}:": Scenario(
            [ToolUse("Write", {"file_path": "{cwd}/slugify.py", "content": code}), Text(f"slugify.py ({name}) written")]
        )
        for name, code in CODE.items()
    },
    "Judge the branches": Scenario(
        [
            ToolUse("Bash", {"command": CHECK, "description": "run the shared check on every branch"}),
            ToolUse("StructuredOutput", {"winner": "contest/regex", "reasons": "all pass; the regex one is shortest"}),
            Text("contest/regex wins"),
        ]
    ),
}


async def main() -> int:
    args = parse_args(__doc__ or "")
    async with workdir(args.cwd) as cwd, example_config(args.real, ROUTES, allowed_tools=["Bash", "Write"]) as config:
        repo = ensure_repo(cwd)
        tasks = [
            ListTask(
                task=f"Contender {name}: write slugify.py defining slugify(s) {style}. No other files.", branch=branch
            )
            for (name, style), branch in zip(STYLES.items(), BRANCHES.values(), strict=True)
        ]
        # Parallel tasks in a git repository run in worktrees by default (the result's note says so).
        contest = await cc_execute_list(
            tasks, sequential=False, max_parallel=3, config=config, cwd=repo, on_progress=show
        )
        print(f"contenders: {contest.succeeded}/3 on their own branches ({contest.isolation})")
        for entry in contest.entries:
            if entry.result is not None:
                print(f"  {entry.result.branch}: {', '.join(entry.result.files_created)}")
        verdict = await cc_execute(
            "Judge the branches " + ", ".join(BRANCHES.values()) + ": each has a slugify.py. Run the same cases "
            "against each branch's version and pick the best branch.",
            config=config,
            cwd=repo,
            isolation="worktree",  # the judge's scratch files stay on its own branch
            json_schema=JUDGE_SCHEMA,
            on_progress=show,
        )
        winner = verdict.structured_output["winner"]
        print(f"winner: {winner} — {verdict.structured_output['reasons']}")
        for entry in contest.entries:
            if entry.result is not None and entry.result.branch == winner:
                merged = await merge_run(entry.run_id)
                print(f"merged {merged.branch} into {merged.into}: {', '.join(merged.files)}")
            else:
                await discard_run(entry.run_id)
        await discard_run(verdict.run_id)
        return 0 if contest.status == "success" else 1


if __name__ == "__main__":
    raise SystemExit(anyio.run(main))
