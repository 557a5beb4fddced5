"""Runs as Temporal activities on remote workers (install the ``temporal`` extra).

One workflow per run (workflow id = run id), running one activity that executes the run through
``engine.runner`` on a worker (``cc-executor worker``). ``TemporalBackend`` is the front ends' side of it. See
docs/scale-out.md.
"""

from __future__ import annotations

from cc_executor.backends.temporal.settings import TemporalSettings

__all__ = ["TemporalSettings"]
