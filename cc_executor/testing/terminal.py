"""Running a command on a pseudo-terminal, as a person at a shell would, and answering its prompts: how the tests
drive `cc-executor run`'s live display and its y/n/always questions."""

from __future__ import annotations

import fcntl
import os
import pty
import struct
import termios
from collections.abc import Mapping, Sequence

import anyio
import anyio.to_thread

__all__ = ["on_a_terminal"]


async def on_a_terminal(
    argv: Sequence[str],
    env: Mapping[str, str],
    *,
    answers: Sequence[tuple[bytes, bytes]] = (),
    within: float = 30.0,
) -> tuple[int, str]:
    """Run ``argv`` with stdin, stdout and stderr on a 40x160 terminal until it exits; each ``(prompt, answer)`` in
    turn is typed once ``prompt`` has appeared on the screen since the answer before it. Returns the exit code and
    everything drawn. A command that ends its output before the prompts it owes is an AssertionError."""
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 40, 160, 0, 0))
    try:
        proc = await anyio.open_process(list(argv), stdin=slave, stdout=slave, stderr=slave, env=dict(env))
    finally:
        os.close(slave)

    def read_some() -> bytes:
        try:
            return os.read(master, 65536)
        except OSError:  # EIO: every writer to the terminal is gone
            return b""

    screen = b""
    pending, answered_at = list(answers), 0
    try:
        with anyio.fail_after(within):
            while chunk := await anyio.to_thread.run_sync(read_some, abandon_on_cancel=True):
                screen += chunk
                if pending and pending[0][0] in screen[answered_at:]:
                    os.write(master, pending.pop(0)[1])
                    answered_at = len(screen)
            code = await proc.wait()
    finally:
        os.close(master)
        if proc.returncode is None:
            proc.kill()
            with anyio.CancelScope(shield=True):
                await proc.wait()
    output = screen.decode("utf-8", "replace")
    assert not pending, f"the command ended before asking {pending[0][0]!r}:\n{output}"
    return code, output
