"""``cc-executor worker``: execute runs for front ends that use the Temporal backend (needs the ``temporal`` extra)."""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from cc_executor.errors import CCExecutorError, InvalidRequestError

_DESCRIPTION = """\
Serve runs from a Temporal task queue on this machine. Front ends (the MCP server, the CLI) submit runs with
CC_EXECUTOR_BACKEND=temporal; any worker polling the same queue executes them with its own `claude`.
Every flag has an environment variable (CC_EXECUTOR_TEMPORAL_ADDRESS, _NAMESPACE, _TASK_QUEUE, _TLS_CERT,
_TLS_KEY, _TLS_CA, _API_KEY); flags win. A run's cwd must exist on this worker at the same path.
SIGTERM stops taking runs and lets running ones finish within --graceful-timeout, then hands them back
to another worker. See docs/scale-out.md."""


def add_parser(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = commands.add_parser(
        "worker",
        help="execute runs from a Temporal task queue (scale-out; needs cc-executor[temporal])",
        description=_DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--address", help="Temporal frontend host:port (default localhost:7233)")
    parser.add_argument("--namespace", help="Temporal namespace (default: default)")
    parser.add_argument("--task-queue", help="task queue shared with the front ends (default: cc-executor)")
    parser.add_argument("--tls-cert", type=Path, help="client certificate for mTLS (PEM)")
    parser.add_argument("--tls-key", type=Path, help="client private key for mTLS (PEM)")
    parser.add_argument("--tls-ca", type=Path, help="CA certificate that signed the server's (PEM)")
    parser.add_argument("--api-key", help="API key for a hosted Temporal (implies TLS); prefer the env variable")
    parser.add_argument("--identity", help="this worker's name in Temporal and on its runs (default host:pid)")
    parser.add_argument("--max-concurrent", type=int, help="runs executed at once (default: one per CPU)", metavar="N")
    parser.add_argument(
        "--graceful-timeout",
        type=float,
        default=600.0,
        metavar="SECONDS",
        help="on SIGTERM, how long running runs may go on before they are handed back (default 600)",
    )
    parser.set_defaults(handler=_worker)


def _worker(args: argparse.Namespace) -> int:
    try:
        import anyio

        from cc_executor.backends.temporal.settings import TemporalSettings
        from cc_executor.backends.temporal.worker import run_worker
    except ImportError as exc:
        raise CCExecutorError(
            f"the Temporal backend needs the temporal extra: pip install 'cc-executor[temporal]' ({exc})"
        ) from exc
    if args.max_concurrent is not None and args.max_concurrent < 1:
        raise InvalidRequestError(f"--max-concurrent must be at least 1, got {args.max_concurrent}")
    if not args.graceful_timeout >= 0:  # also refuses nan
        raise InvalidRequestError(f"--graceful-timeout must be 0 or more seconds, got {args.graceful_timeout}")
    settings = TemporalSettings.from_env(
        address=args.address,
        namespace=args.namespace,
        task_queue=args.task_queue,
        tls_cert=args.tls_cert,
        tls_key=args.tls_key,
        tls_ca=args.tls_ca,
        api_key=args.api_key,
    )
    if not logging.getLogger().handlers or logging.getLogger().level > logging.INFO:
        logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(asctime)s %(levelname)s %(message)s")
        logging.getLogger().setLevel(logging.INFO)
    try:
        anyio.run(
            lambda: run_worker(
                settings,
                identity=args.identity,
                max_concurrent=args.max_concurrent,
                graceful_s=args.graceful_timeout,
            )
        )
    except ConnectionError as exc:
        raise CCExecutorError(str(exc)) from exc
    return 0
