"""`ambient dev`'s terminal (in its foreground, hung up) and its data dir's lock."""

from __future__ import annotations

import errno
import fcntl
import os
import termios
from pathlib import Path


def in_its_foreground(fd: int) -> bool:
    """Whether ``fd`` is this process's terminal with it in the foreground (`make run` in a
    terminal): not one it was started away from (`setsid ambient dev &`, a job put in the
    background), whose closing must not stop it."""
    try:
        return os.isatty(fd) and os.tcgetpgrp(fd) == os.getpgrp()
    except OSError:  # not its controlling terminal
        return False


def hung_up(fd: int) -> bool:
    """Whether ``fd``'s terminal hung up (closed): every ioctl on it fails with EIO then."""
    try:
        termios.tcgetattr(fd)
    except termios.error as exc:
        return bool(exc.args) and exc.args[0] == errno.EIO
    return False


LOCK_FILE = "dev.lock"


def hold_data_dir(data_dir: Path) -> int | None:
    """The data folder held for this process (an open file locked, never closed: released as
    the process ends, however it ends); None if another process holds it."""
    fd = os.open(data_dir / LOCK_FILE, os.O_WRONLY | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        return None
    return fd
