"""The package's version, in one place: pyproject.toml reads it (``[tool.setuptools.dynamic]``), and
``cc_executor.__version__``, ``cc-executor --version`` and the MCP server's handshake all show it.

Kept in a module with no imports so the build reads it without importing the package."""

__version__ = "0.1.0"
