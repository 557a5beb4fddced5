"""Which backend a front end uses: ``CC_EXECUTOR_BACKEND`` (``local``, the default here, ``durable`` or
``temporal``). The MCP server's own default is ``durable`` (server/settings.py)."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING

from cc_executor.backends.local import LocalBackend
from cc_executor.errors import CCExecutorError, InvalidRequestError

if TYPE_CHECKING:
    from cc_executor.backends.durable import DurableBackend
    from cc_executor.backends.temporal.backend import TemporalBackend

BACKEND_ENV = "CC_EXECUTOR_BACKEND"
BACKEND_NAMES = ("durable", "local", "temporal")


def open_backend(
    *,
    store_path: Path | None = None,
    transcript_dir: Path | None = None,
    max_concurrent: int | None = None,
    kill_grace_s: float = 2.0,
    environ: Mapping[str, str] | None = None,
) -> LocalBackend | DurableBackend | TemporalBackend:
    """The backend ``CC_EXECUTOR_BACKEND`` names, not yet entered (``async with`` it). ``temporal`` reads its
    address and the rest from ``CC_EXECUTOR_TEMPORAL_*`` (docs/scale-out.md); ``max_concurrent`` and
    ``kill_grace_s`` are then the workers' business."""
    env = os.environ if environ is None else environ
    name = env.get(BACKEND_ENV, "").strip().lower() or "local"
    if name == "local":
        return LocalBackend(
            store_path=store_path,
            transcript_dir=transcript_dir,
            max_concurrent=max_concurrent,
            kill_grace_s=kill_grace_s,
        )
    if name == "durable":
        from cc_executor.backends.durable import DurableBackend

        home = store_path.parent if store_path is not None else None
        return DurableBackend(home, max_concurrent=max_concurrent, kill_grace_s=kill_grace_s)
    if name == "temporal":
        try:
            from cc_executor.backends.temporal.backend import TemporalBackend
            from cc_executor.backends.temporal.settings import TemporalSettings
        except ImportError as exc:
            raise CCExecutorError(
                f"{BACKEND_ENV}=temporal needs the temporal extra: pip install 'cc-executor[temporal]' ({exc})"
            ) from exc
        return TemporalBackend(TemporalSettings.from_env(env), store_path=store_path, transcript_dir=transcript_dir)
    raise InvalidRequestError(f"{BACKEND_ENV}={name!r} is not a backend; use one of {', '.join(BACKEND_NAMES)}")
