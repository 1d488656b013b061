"""SIGTERM behaves like Ctrl-C, and a stop is handled once.

systemd, Kubernetes, SLURM (time limit, preemption, ``scancel``) and ``timeout`` stop a process with
SIGTERM. ``install`` makes SIGTERM raise ``Terminated``, a ``KeyboardInterrupt``, so every path that
handles Ctrl-C (the running trial marked ``interrupted``, workers asked to stop, exit code) handles
it too. The exit code says which signal it was: 130 for SIGINT, 143 for SIGTERM (128 + the signal's
number, as shells report it).

Once a stop has begun, further SIGINT/SIGTERM are ignored, so that a second Ctrl-C (or the process
group's SIGINT arriving together with the one ``run`` forwards to its workers) cannot cut short the
bookkeeping that makes the stop resumable.

Python runs a signal handler between any two bytecodes, also inside a finaliser or a weakref
callback (the import system runs those while torch loads); an exception raised there cannot
propagate and is "ignored" with a traceback on stderr. ``install`` therefore also routes such an
ignored interruption back: the signal is raised again once the callback has returned, to be handled
where it can stop the program.

A library may also catch the interruption and raise an error of its own in its place: a database
driver whose query the signal cut short fails again while it cleans up (psycopg's "can't change
'autocommit' now"), and Optuna reports that as a ``StorageInternalError``. Once a stop has begun,
such an error is the stop: ``raise_if_stopping`` and ``stops_as_interruptions`` turn it back into the
stop's ``KeyboardInterrupt``, so that the trial is marked interrupted, the workers are stopped and the
exit code is 130 or 143, not a traceback and exit 1.

A worker that ``run`` started stops like this too when ``run`` itself is gone without telling it
(killed with SIGKILL, or a library caller's process ended): ``watch_parent`` raises SIGTERM in the
worker once its parent process has changed, so that no orphaned worker trains on unseen.

Example:
    >>> exit_code(KeyboardInterrupt())
    130
    >>> exit_code(Terminated())
    143
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import threading
import time
from typing import Iterator

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


def _unraisable(args) -> None:
    """An interruption raised where it could not propagate is delivered again (module docstring)."""
    global _stopping
    if isinstance(args.exc_value, KeyboardInterrupt) and _stopping is not None:
        signum, _stopping = _stopping, None
        # From another thread, a moment later, so that the handler runs once this hook and the
        # callback have returned (should it land in another such callback, this hook runs again).
        threading.Thread(target=_raise_later, args=(signum,), daemon=True).start()
        return
    sys.__unraisablehook__(args)


def _raise_later(signum: int) -> None:
    time.sleep(0.05)
    signal.raise_signal(signum)


def install() -> None:
    """Route SIGINT and SIGTERM through ``_handle`` (main thread only; elsewhere a no-op)."""
    if threading.current_thread() is not threading.main_thread():
        return
    signal.signal(signal.SIGINT, _handle)
    signal.signal(signal.SIGTERM, _handle)
    sys.unraisablehook = _unraisable


#: the environment variable by which ``run`` tells its workers its process id
PARENT_ENV = "ECASWEEP_PARENT_PID"


def watch_parent(interval: float = 1.0) -> bool:
    """When ``PARENT_ENV`` names this process's parent, stop (SIGTERM) once that parent is gone;
    returns whether a watch was started."""
    expected = os.environ.get(PARENT_ENV)
    if not expected or not expected.isdigit() or int(expected) != os.getppid():
        return False

    def watch() -> None:
        while os.getppid() == int(expected):
            time.sleep(interval)
        signal.raise_signal(signal.SIGTERM)

    threading.Thread(target=watch, name="ecasweep-parent-watch", daemon=True).start()
    return True


def stopping() -> int | None:
    """The signal that began the stop, if one has."""
    return _stopping


def interruption() -> KeyboardInterrupt | None:
    """The stop's interruption (``Terminated`` for SIGTERM), if a stop has begun."""
    if _stopping is None:
        return None
    return Terminated() if _stopping == signal.SIGTERM else KeyboardInterrupt()


def raise_if_stopping(exc: BaseException) -> None:
    """Raise the stop's interruption, caused by ``exc``, if a stop has begun (module docstring);
    else return."""
    stop = interruption()
    if stop is not None and not isinstance(exc, KeyboardInterrupt):
        raise stop from exc


@contextlib.contextmanager
def stops_as_interruptions() -> Iterator[None]:
    """An error raised inside once a stop has begun leaves as the stop's interruption."""
    try:
        yield
    except Exception as exc:
        raise_if_stopping(exc)
        raise


def exit_code(exc: BaseException) -> int:
    """The exit code for an interruption."""
    return EXIT_TERMINATED if isinstance(exc, Terminated) else EXIT_INTERRUPTED
