"""cc-executor: run the Claude Code CLI as a supervised subprocess."""
