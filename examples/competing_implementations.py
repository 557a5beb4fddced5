"""Competing implementations: three Claude instances implement the same function in parallel, then a
fourth judges them by running a shared check (seed example: concurrent implementations + judge).

    python examples/competing_implementations.py            # offline, scripted fake API
    python examples/competing_implementations.py --real     # your Claude login
"""

from __future__ import annotations

import anyio
from _common import example_config, parse_args, show, workdir

from cc_executor import cc_execute, cc_execute_list
from cc_executor.testing.fake_api import Scenario, Text, ToolUse

STYLES = {
    "impl_a": "with a regular expression",
    "impl_b": "with str.translate and split",
    "impl_c": "character by character",
}
CODE = {
    "impl_a": "import re\n\ndef slugify(s):\n    return re.sub(r'[^a-z0-9]+', '-', s.lower()).strip('-')\n",
    "impl_b": (
        "import string\n\ndef slugify(s):\n"
        "    table = str.maketrans({c: ' ' for c in string.punctuation})\n"
        "    return '-'.join(s.lower().translate(table).split())\n"
    ),
    "impl_c": (
        "def slugify(s):\n    out, dash = [], False\n    for ch in s.lower():\n"
        "        if ch.isalnum():\n            out.append(ch); dash = False\n"
        "        elif not dash and out:\n            out.append('-'); dash = True\n"
        "    return ''.join(out).strip('-')\n"
    ),
}
CHECK = (
    "python3 -c \"import impl_a, impl_b, impl_c; cases={'Hello, World!': 'hello-world', '  a  b ': 'a-b'}; "
    'print({m.__name__: all(m.slugify(k) == v for k, v in cases.items()) for m in (impl_a, impl_b, impl_c)})"'
)
JUDGE_SCHEMA = {
    "type": "object",
    "properties": {"winner": {"type": "string"}, "reasons": {"type": "string"}},
    "required": ["winner", "reasons"],
}

ROUTES = {
    **{
        f"Write {name}.py": Scenario(
            [ToolUse("Write", {"file_path": "{cwd}/" + f"{name}.py", "content": code}), Text(f"{name}.py written")]
        )
        for name, code in CODE.items()
    },
    "Judge the three": Scenario(
        [
            ToolUse("Bash", {"command": CHECK, "description": "run the shared check"}),
            ToolUse("StructuredOutput", {"winner": "impl_a", "reasons": "all pass; impl_a is the shortest"}),
            Text("impl_a wins"),
        ]
    ),
}


async def main() -> int:
    args = parse_args(__doc__ or "")
    async with workdir(args.cwd) as cwd, example_config(args.real, ROUTES, allowed_tools=["Bash", "Write"]) as config:
        tasks = [f"Write {name}.py defining slugify(s) {style}. No other files." for name, style in STYLES.items()]
        contest = await cc_execute_list(
            tasks, sequential=False, max_parallel=3, config=config, cwd=cwd, on_progress=show
        )
        print(f"implementations: {contest.succeeded}/3 written ({', '.join(contest.files_created)})")
        verdict = await cc_execute(
            "Judge the three slugify implementations impl_a.py, impl_b.py, impl_c.py: run the same cases "
            "against each and pick the best.",
            config=config,
            cwd=cwd,
            json_schema=JUDGE_SCHEMA,
            on_progress=show,
        )
        print(f"winner: {verdict.structured_output['winner']} — {verdict.structured_output['reasons']}")
        return 0


if __name__ == "__main__":
    raise SystemExit(anyio.run(main))
