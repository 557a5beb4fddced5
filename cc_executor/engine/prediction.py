"""Choosing a run's wall-clock timeout when the caller left it open: history first, and on request a
cheap model asked through the CLI itself. Whatever decides is written down in ``timeout_basis``."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from cc_executor.engine.progress_text import shorten
from cc_executor.engine.timeouts import MAX_PREDICTED_S, MIN_TIMEOUT_S, TimeoutEstimate, predict_timeout
from cc_executor.errors import InvalidRequestError
from cc_executor.models import ExecutionResult, RunRequest
from cc_executor.registry.store import RunStore

# execute_run, passed in by the runner (which imports this module).
Execute = Callable[[RunRequest, RunStore], Awaitable[ExecutionResult]]


async def resolve_timeout(request: RunRequest, store: RunStore, *, execute: Execute) -> RunRequest:
    """Fill in a wall-clock timeout the caller left open: learned from history (and, on request, an agent)."""
    if request.config.timeout is not None:
        return request.model_copy(update={"timeout_basis": request.timeout_basis or "given by the caller"})
    estimate = await predict_timeout(store, request.task, str(request.cwd))
    basis = f"history: {estimate.basis}"
    seconds = estimate.seconds
    if request.config.agent_predict_timeout:
        agent = await predict_with_agent(request, store, execute=execute)
        if agent.source == "agent":
            seconds, basis = agent.seconds, f"agent: {agent.basis}; {basis} (not used)"
        else:
            basis = f"{agent.basis}; using {basis}"
    config = request.config.model_copy(update={"timeout": seconds})
    return request.model_copy(update={"config": config, "timeout_basis": basis})


_PREDICTION_PROMPT = """You estimate how long an autonomous coding agent (Claude Code, headless) will take.
Do not do the task. Reply only through the structured output: seconds (a realistic upper bound for the whole
task, including tests and retries) and reasons (one or two sentences).

Working directory: {cwd}
Task:
{task}"""

PREDICTION_SCHEMA: dict[str, object] = {
    "type": "object",
    "properties": {"seconds": {"type": "number", "minimum": 1}, "reasons": {"type": "string"}},
    "required": ["seconds", "reasons"],
}


async def predict_with_agent(request: RunRequest, store: RunStore, *, execute: Execute) -> TimeoutEstimate:
    """Ask a cheap model (its own recorded run: plan mode, 2 turns, 90 s) for an estimate with reasons.

    A failed prediction is reported in the returned basis ("agent prediction failed: ..."), never silently.
    """
    config = request.config
    predictor = RunRequest(
        task=_PREDICTION_PROMPT.format(cwd=request.cwd, task=request.task[:20_000]),
        cwd=request.cwd,
        config=config.model_copy(
            update={
                "model": config.prediction_model or config.model,
                "permission_mode": "plan",
                "max_turns": 2,
                "timeout": 90.0,
                "idle_timeout": 60.0,
                "max_attempts": 1,
                "agent_predict_timeout": False,
                "track_files": False,
                "allowed_tools": [],
            }
        ),
        json_schema=PREDICTION_SCHEMA,
        parent_run_id=request.run_id,
        timeout_basis="timeout prediction run",
    )
    try:
        result = await execute(predictor, store)
    except InvalidRequestError as exc:  # e.g. the operator's policy forbids plan mode or 2 turns: no estimate
        why = f"agent prediction not run ({type(exc).__name__}: {shorten(str(exc), 200)})"
        return TimeoutEstimate(0.0, why, "default")
    output = result.structured_output
    if result.ok and isinstance(output, dict) and isinstance(output.get("seconds"), int | float):
        seconds = min(MAX_PREDICTED_S, max(MIN_TIMEOUT_S, float(output["seconds"])))
        reasons = shorten(" ".join(str(output.get("reasons", "")).split()), 300)
        return TimeoutEstimate(seconds, f"{seconds:g}s ({reasons}) [run {result.run_id}]", "agent")
    why = result.error or "no estimate in the reply"
    return TimeoutEstimate(
        0.0, f"agent prediction failed ({result.error_class}: {shorten(why, 200)}) [run {result.run_id}]", "default"
    )
