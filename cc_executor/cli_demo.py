"""``cc-executor demo`` (placeholder)."""

from __future__ import annotations

import argparse


def add_parser(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = commands.add_parser("demo", help="offline end-to-end demo")
    parser.set_defaults(handler=lambda args: 0)
