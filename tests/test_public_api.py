"""The public surface is deliberate: everything exported exists, is sorted, and nothing private leaks."""

from __future__ import annotations

import cc_executor


def test_all_is_sorted_and_importable() -> None:
    assert cc_executor.__all__ == sorted(cc_executor.__all__)
    for name in cc_executor.__all__:
        assert hasattr(cc_executor, name), name
    assert not [n for n in cc_executor.__all__ if n.startswith("_") and n != "__version__"]


def test_every_run_error_is_exported_and_rooted() -> None:
    from cc_executor.errors import ERROR_CLASSES

    for name, cls in ERROR_CLASSES.items():
        assert issubclass(cls, cc_executor.CCExecutorError)
        assert name in cc_executor.__all__, name


def test_the_core_does_not_import_mcp() -> None:
    import subprocess
    import sys

    code = "import sys, cc_executor, cc_executor.api, cc_executor.backends.local; print('mcp' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
