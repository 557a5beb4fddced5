"""``cc-executor``: the command line. A front end: it reaches runs only through the public API and the backend seam."""

from cc_executor.cli.main import main

__all__ = ["main"]
