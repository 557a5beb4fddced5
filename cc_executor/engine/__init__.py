"""The engine: executing one run of the Claude Code CLI end to end (internal; use the public API or a backend).

runner.execute_run is the one core every backend calls; the modules beside it each own one concern of it:
command (argv/env), process (the process tree), attempt (one CLI process), stream/events (the stdout
protocol), outcome (error classification), progress_text/emit (progress), changes (the file diff), slots
(concurrency), timeouts/prediction (choosing a timeout), structured_output (JSON Schema), cancel (cancel
from any process), recovery (runs of dead owners marked lost) and task_list_runner (many runs under one
list id).
"""
