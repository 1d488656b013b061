"""SIGTERM behaves like Ctrl-C, and a stop is handled once.

systemd, Kubernetes, SLURM (time limit, preemption, ``scancel``) and ``timeout`` stop a process with
SIGTERM. ``install`` makes SIGTERM raise ``Terminated``, a ``KeyboardInterrupt``, so every path that
handles Ctrl-C (the running trial marked ``interrupted``, workers asked to stop, exit code) handles
it too. The exit code says which signal it was: 130 for SIGINT, 143 for SIGTERM (128 + the signal's
number, as shells report it).

Once a stop has begun, further SIGINT/SIGTERM are ignored, so that a second Ctrl-C (or the process
group's SIGINT arriving together with the one ``run`` forwards to its workers) cannot cut short the
bookkeeping that makes the stop resumable.

Example:
    >>> exit_code(KeyboardInterrupt())
    130
    >>> exit_code(Terminated())
    143
"""

from __future__ import annotations

import signal
import threading

EXIT_INTERRUPTED = 130
EXIT_TERMINATED = 128 + signal.SIGTERM


class Terminated(KeyboardInterrupt):
    """The process was asked to stop with SIGTERM."""


_stopping: int | None = None


def _handle(signum: int, frame: object) -> None:
    global _stopping
    if _stopping is not None:
        return  # already stopping: let the bookkeeping finish
    _stopping = signum
    raise Terminated() if signum == signal.SIGTERM else KeyboardInterrupt()


def install() -> None:
    """Route SIGINT and SIGTERM through ``_handle`` (main thread only; elsewhere a no-op)."""
    if threading.current_thread() is not threading.main_thread():
        return
    signal.signal(signal.SIGINT, _handle)
    signal.signal(signal.SIGTERM, _handle)


def stopping() -> int | None:
    """The signal that began the stop, if one has."""
    return _stopping


def exit_code(exc: BaseException) -> int:
    """The exit code for an interruption."""
    return EXIT_TERMINATED if isinstance(exc, Terminated) else EXIT_INTERRUPTED
