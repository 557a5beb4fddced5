"""A multi-component build: independent components in parallel, each in its own git worktree and branch; their
branches are merged back, then one integration task uses them.

python examples/multi_component_build.py            # offline, scripted fake API
python examples/multi_component_build.py --real     # your Claude login
"""

from __future__ import annotations

import anyio
from _common import ensure_repo, example_config, parse_args, show, workdir

from cc_executor import cc_execute, cc_execute_list, merge_run
from cc_executor.testing.fake_api import Scenario, Text, ToolUse

COMPONENTS = {
    "models.py": "from dataclasses import dataclass\n\n@dataclass\nclass Todo:\n    title: str\n    done: bool = False\n",
    "storage.py": "class Storage:\n    def __init__(self):\n        self.items = []\n\n    def add(self, item):\n"
    "        self.items.append(item)\n        return len(self.items)\n",
    "render.py": "def render(todos):\n    return '\\n'.join(('[x] ' if t.done else '[ ] ') + t.title for t in todos)\n",
}
MAIN = (
    "from models import Todo\nfrom storage import Storage\nfrom render import render\n\n"
    "s = Storage()\ns.add(Todo('write code', True))\ns.add(Todo('ship it'))\nprint(render(s.items))\n"
)

ROUTES = {
    **{
        f"Component {name}": Scenario(
            [ToolUse("Write", {"file_path": "{cwd}/" + name, "content": code}), Text(f"{name} done")]
        )
        for name, code in COMPONENTS.items()
    },
    "Integrate": Scenario(
        [
            ToolUse("Write", {"file_path": "{cwd}/main.py", "content": MAIN}),
            ToolUse("Bash", {"command": "python3 main.py", "description": "run the app"}),
            Text("main.py wires the components; it prints two todos"),
        ]
    ),
}


async def main() -> int:
    args = parse_args(__doc__ or "")
    async with workdir(args.cwd) as cwd, example_config(args.real, ROUTES, allowed_tools=["Bash", "Write"]) as config:
        tasks = [
            "Component models.py: a Todo dataclass (title, done=False).",
            "Component storage.py: a Storage class with add(item) returning the count.",
            "Component render.py: render(todos) returning one '[x] title' / '[ ] title' line per todo.",
        ]
        repo = ensure_repo(cwd)
        parts = await cc_execute_list(
            tasks, sequential=False, max_parallel=3, config=config, cwd=repo, isolation="worktree", on_progress=show
        )
        print(f"components: {', '.join(parts.files_created)}")
        for entry in parts.entries:  # each part is on its own branch; they touch different files, so no conflicts
            if entry.result is not None and entry.result.ok:
                merged = await merge_run(entry.run_id)
                print(f"merged {merged.branch}: {', '.join(merged.files)}")
        final = await cc_execute(
            "Integrate: write main.py using models.py, storage.py and render.py, then run it.",
            config=config,
            cwd=cwd,
            on_progress=show,
        )
        print(f"integration: {final.status.value}; created {', '.join(final.files_created)}")
        print((cwd / "main.py").read_text() if (cwd / "main.py").exists() else "(no main.py)")
        return 0 if parts.status == "success" and final.ok else 1


if __name__ == "__main__":
    raise SystemExit(anyio.run(main))
