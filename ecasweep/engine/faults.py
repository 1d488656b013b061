"""Test-only fault injection: kill this process at a chosen point, to prove crashes lose nothing.

``ECASWEEP_FAULT=POINT:N`` sends SIGKILL to the process the N-th time (1-based, counted per process)
it reaches ``POINT``. The points:

* ``checkpoint-write``: in ``CheckpointStore.save``, with half of the temporary file written;
* ``store-result``: in the sweep, with half of a finished trial's metrics stored and the trial
  still RUNNING;
* ``claimed``: in the sweep, right after a trial moved from WAITING to RUNNING (before the worker
  is recorded on it and before training starts).

Unset (always, outside tests) it costs one dictionary lookup per call.

Example:
    ECASWEEP_FAULT=checkpoint-write:2 ecasweep run tiny.toml   # dies writing its second checkpoint
"""

from __future__ import annotations

import os
import signal
from collections import Counter

POINTS = ("checkpoint-write", "store-result", "claimed")
_reached: Counter[str] = Counter()


def armed(point: str) -> bool:
    """Whether ``point`` is where this process is to die now (counts the visit)."""
    spec = os.environ.get("ECASWEEP_FAULT")
    if not spec or not spec.startswith(point + ":"):
        return False
    _reached[point] += 1
    return str(_reached[point]) == spec.split(":", 1)[1]


def kill() -> None:
    """Die as ``kill -9`` would: no cleanup, no flush, no atexit."""
    os.kill(os.getpid(), signal.SIGKILL)
