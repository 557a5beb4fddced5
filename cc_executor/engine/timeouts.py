"""Wall-clock timeouts that learn from history and say why.

When the caller gives no timeout, similar finished runs decide it: word-set (Jaccard) similarity of the
task text, preferring the same cwd, then a high percentile of their durations times a margin. Cheap,
explainable ("p90 of 14 similar runs in this cwd × 1.5"), no ML dependency. Too little history falls
back to a stated default. The idle timeout is separate and never predicted: silence is its own signal.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from cc_executor.registry.store import RunStore

DEFAULT_TIMEOUT_S = 1800.0
MIN_TIMEOUT_S = 60.0
MAX_PREDICTED_S = 24 * 3600.0
MIN_SAMPLES = 3
SIMILARITY = 0.3
MARGIN = 1.5
PERCENTILE = 90

_WORD = re.compile(r"[a-z0-9_]{3,}")

Source = Literal["caller", "history", "default", "agent"]


@dataclass(frozen=True, slots=True)
class TimeoutEstimate:
    seconds: float
    basis: str
    source: Source


def words(text: str) -> frozenset[str]:
    return frozenset(_WORD.findall(text.lower()))


def similarity(a: frozenset[str], b: frozenset[str]) -> float:
    if not a or not b:
        return 0.0
    return len(a & b) / len(a | b)


def percentile(values: Sequence[float], pct: int) -> float:
    """Nearest-rank percentile (no interpolation: the answer is a duration that really happened)."""
    ordered = sorted(values)
    rank = max(1, math.ceil(pct / 100 * len(ordered)))
    return ordered[rank - 1]


def _bounded(seconds: float) -> float:
    return round(min(MAX_PREDICTED_S, max(MIN_TIMEOUT_S, seconds)), 1)


def estimate_from_history(
    history: Sequence[tuple[str, str, float]], task: str, cwd: str, *, default_s: float = DEFAULT_TIMEOUT_S
) -> TimeoutEstimate:
    """``history`` rows are (task, cwd, duration_s) of successful runs, newest first."""
    target = words(task)
    similar = [(t, c, d) for t, c, d in history if similarity(words(t), target) >= SIMILARITY]
    groups = [
        ([d for _, c, d in similar if c == cwd], "similar runs in this cwd", MARGIN),
        ([d for _, _, d in similar], "similar runs (any cwd)", MARGIN),
        ([d for _, c, d in history if c == cwd], "runs in this cwd (not similar)", 2 * MARGIN),
    ]
    for durations, what, margin in groups:
        if len(durations) >= MIN_SAMPLES:
            p = percentile(durations, PERCENTILE)
            seconds = _bounded(p * margin)
            basis = f"p{PERCENTILE} of {len(durations)} {what} = {p:.1f}s × {margin:g} margin → {seconds:g}s"
            return TimeoutEstimate(seconds, basis, "history")
    return TimeoutEstimate(
        default_s, f"default {default_s:g}s: too little history ({len(similar)} similar runs)", "default"
    )


async def predict_timeout(
    store: RunStore, task: str, cwd: str, *, default_s: float = DEFAULT_TIMEOUT_S
) -> TimeoutEstimate:
    return estimate_from_history(await store.durations(limit=2000), task, cwd, default_s=default_s)
