"""``cc-executor``: the command line over the library (run, runs, show, cancel, serve, doctor, demo, worker).

Each command lives in its own module with an ``add_parser(subparsers)`` that registers its flags and sets
``handler``, a function from the parsed arguments to an exit code. Commands reach runs only through the backend
seam (``cc_executor.backends``; tests/test_layering.py holds them to it). Heavy imports (rich, the backend, mcp)
happen inside the handlers so ``--help`` and ``--version`` stay fast.

Exit codes: 0 success; 1 the run (or a doctor check) failed; 2 bad usage, bad input or an unknown run id;
130/143 interrupted by SIGINT/SIGTERM.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Callable, Sequence

from pydantic import ValidationError

from cc_executor import __version__
from cc_executor.cli.common import EXIT_FAILED, EXIT_USAGE, err
from cc_executor.errors import CCExecutorError, InvalidRequestError, RunNotFoundError, TranscriptNotFoundError
from cc_executor.validation import describe_validation_error

Handler = Callable[[argparse.Namespace], int]

_DESCRIPTION = """\
Run the Claude Code CLI as a supervised subprocess: live progress, timeouts, whole-tree cancellation,
and every run recorded (SQLite + raw transcript) in the state dir ($CC_EXECUTOR_HOME, else
~/.local/state/cc-executor)."""

_EPILOG = """\
examples:
  cc-executor demo                              offline end-to-end demo (no API key needed)
  cc-executor doctor                            check the CLI, login and state dir
  cc-executor run "add a --verbose flag to cli.py" --cwd ~/src/app
  cc-executor run --worktree "try another parser" --cwd ~/src/app   then: diff / merge / discard
  cc-executor runs --status running
  cc-executor show 3f2a --transcript
  cc-executor approve 3f2a [--deny]             answer the permission prompt a run waits on
  cc-executor prune --older-than 30d --dry-run  what a prune of runs over 30 days old would delete
  cc-executor serve                             MCP stdio server (for Claude Desktop / Code, Codex)
  cc-executor worker --address temporal:7233    execute runs for Temporal front ends (scale-out)

Results go to stdout, progress to stderr; --json makes stdout one JSON document.
Exit codes: 0 ok, 1 run or check failed, 2 bad usage or unknown run, 130 interrupted (Ctrl-C)."""


def build_parser() -> argparse.ArgumentParser:
    from cc_executor.cli import approve as cli_approve
    from cc_executor.cli import demo as cli_demo
    from cc_executor.cli import doctor as cli_doctor
    from cc_executor.cli import prune as cli_prune
    from cc_executor.cli import run as cli_run
    from cc_executor.cli import runs as cli_runs
    from cc_executor.cli import worker as cli_worker
    from cc_executor.cli import worktrees as cli_worktrees

    parser = argparse.ArgumentParser(
        prog="cc-executor",
        description=_DESCRIPTION,
        epilog=_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"cc-executor {__version__}")
    parser.add_argument("-v", "--verbose", action="count", default=0, help="log to stderr (-v info, -vv debug)")
    commands = parser.add_subparsers(title="commands", metavar="COMMAND", dest="command", required=True)
    cli_run.add_parser(commands)
    cli_runs.add_parsers(commands)
    cli_worktrees.add_parsers(commands)
    cli_approve.add_parser(commands)
    _add_serve(commands)
    cli_doctor.add_parser(commands)
    cli_prune.add_parser(commands)
    cli_demo.add_parser(commands)
    cli_worker.add_parser(commands)
    return parser


def _add_serve(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = commands.add_parser(
        "serve",
        help="run the MCP stdio server (what an MCP host starts)",
        description="Run the cc-executor MCP server over stdio (the same as the cc-executor-mcp command). "
        "Nothing but the protocol is written to stdout; logs go to stderr. Configure your MCP host to start "
        "`cc-executor serve`.",
    )
    parser.set_defaults(handler=_serve)


def _serve(args: argparse.Namespace) -> int:
    import importlib

    try:
        server = importlib.import_module("cc_executor_mcp.__main__")
    except ImportError as exc:
        raise CCExecutorError(
            f"the MCP server package (cc_executor_mcp) cannot be imported: {exc}. "
            "Reinstall cc-executor (pip install -e . in the checkout, or pip install cc-executor)."
        ) from exc
    sys.argv = [f"{os.path.basename(sys.argv[0])} serve"]
    server.main()
    return 0


def _configure_logging(verbosity: int) -> None:
    level = logging.WARNING if verbosity == 0 else logging.INFO if verbosity == 1 else logging.DEBUG
    logging.basicConfig(level=level, stream=sys.stderr, format="%(levelname)s %(name)s: %(message)s")


def run(argv: Sequence[str] | None = None) -> int:
    """Parse ``argv`` and run the command; returns the exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    _configure_logging(args.verbose)
    handler: Handler = args.handler
    try:
        return handler(args)
    except (InvalidRequestError, RunNotFoundError, TranscriptNotFoundError) as exc:
        err(f"cc-executor {args.command}: error: {exc}")
        return EXIT_USAGE
    except CCExecutorError as exc:
        err(f"cc-executor {args.command}: error: {exc}")
        return EXIT_FAILED
    except KeyboardInterrupt:
        err("interrupted")
        return 130
    except ValidationError as exc:  # a value a command passed on to a model without checking it first
        err(f"cc-executor {args.command}: error: {describe_validation_error(exc)}")
        return EXIT_USAGE
    except Exception as exc:  # never a bare traceback: one sentence, the traceback only with -v
        err(internal_error(args.command, exc, verbose=args.verbose > 0))
        return EXIT_FAILED


def internal_error(command: str, exc: Exception, *, verbose: bool) -> str:
    """What a user sees when a command fails in a way nobody planned for (a bug to report)."""
    import traceback

    detail = " ".join(str(exc).split())[:300]
    text = f"cc-executor {command}: internal error ({type(exc).__name__}): {detail}"
    if not verbose:
        return text + "\n(unexpected: run again with -v for the traceback, and please report it)"
    return text + "\n" + "".join(traceback.format_exception(exc)).rstrip()


def main(argv: Sequence[str] | None = None) -> None:
    """Console-script entry point."""
    try:
        code = run(argv)
        sys.stdout.flush()
    except BrokenPipeError:
        # stdout was closed early (e.g. `cc-executor runs | head -1`): exit like a process killed by SIGPIPE.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        code = 141
    sys.exit(code)
