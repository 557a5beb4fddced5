"""The worktrees root as a "top of directory hierarchies" for ext4's block allocator (``chattr +T``).

ext2/3/4 place a new directory's inodes in its parent's block group, so every worktree made under one root lands in
the same group as the worktrees deleted before it. On an ext4 without a journal, creating a file there skips every
inode freed in the last 30 s (``recently_deleted`` in the kernel's fs/ext4/ialloc.c, a buffer lookup each), so
back-to-back runs check out more and more slowly: 207 files took 44 ms where they take 5 ms with the flag, measured
interleaved on this project's test machine. With ``FS_TOPDIR_FL`` on the root, the Orlov allocator treats each
worktree as an unrelated hierarchy and spreads them over groups, which is what worktrees are. It is a hint only:
other filesystems refuse the ioctl and nothing changes.
"""

from __future__ import annotations

import array
import contextlib
import fcntl
import os
import sys
from pathlib import Path

__all__ = ["FS_TOPDIR_FL", "is_top_directory", "mark_top_directory"]

FS_TOPDIR_FL = 0x00020000
# <linux/fs.h>: _IOR('f', 1, long) and _IOW('f', 2, long) on 64-bit Linux; the kernel reads and writes an int.
_FS_IOC_GETFLAGS = 0x80086601
_FS_IOC_SETFLAGS = 0x40086602
_marked: set[Path] = set()


def _flags(fd: int) -> int:
    value = array.array("i", [0])
    fcntl.ioctl(fd, _FS_IOC_GETFLAGS, value, True)
    return value[0]


def is_top_directory(path: Path) -> bool | None:
    """Whether ``path`` carries the flag; None where the filesystem keeps no such flags."""
    if not sys.platform.startswith("linux"):
        return None
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        return bool(_flags(fd) & FS_TOPDIR_FL)
    except OSError:
        return None
    finally:
        os.close(fd)


def mark_top_directory(path: Path) -> None:
    """Set ``FS_TOPDIR_FL`` on the directory ``path`` (once per process); silently nothing where unsupported."""
    if path in _marked or not sys.platform.startswith("linux"):
        return
    _marked.add(path)
    with contextlib.suppress(OSError):
        fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
        try:
            flags = _flags(fd)
            if not flags & FS_TOPDIR_FL:
                fcntl.ioctl(fd, _FS_IOC_SETFLAGS, array.array("i", [flags | FS_TOPDIR_FL]))
        finally:
            os.close(fd)
