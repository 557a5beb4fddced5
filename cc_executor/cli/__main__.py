"""``python -m cc_executor.cli``: the same command line as ``cc-executor``."""

from cc_executor.cli.main import main

main()
