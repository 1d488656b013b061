"""Per-epoch checkpoints of a trial: written atomically, loaded safely, torn files survived.

A trial's checkpoints live in ``<root>/<trial identity>/epoch-<n>.pt``. Each is written to a
temporary file, flushed to disk and renamed into place, so a crash never leaves a half-written file
under a final name; the two newest are kept, so a checkpoint torn by a failing disk still leaves the
previous one. Loading uses ``torch.load(weights_only=True)``: a checkpoint cannot run code.

A checkpoint that cannot be written (disk full, permissions) does not stop the trial: ``save`` logs
a warning and returns None, the previous checkpoint stays valid, and training goes on (a checkpoint
only saves time after a crash; the result is stored elsewhere). Temporary files left by a process
killed mid-write are removed when the trial's checkpoints are next read.

Example:
    >>> store = CheckpointStore("/tmp/ckpt", "0123abcd")   # doctest: +SKIP
    >>> store.save(3, {"model": model.state_dict()})       # doctest: +SKIP
    >>> epoch, state = store.load_latest()                 # doctest: +SKIP
"""

from __future__ import annotations

import logging
import os
import re
import shutil
import tempfile
from pathlib import Path
from typing import Any

import torch

from . import faults

log = logging.getLogger(__name__)

_NAME = re.compile(r"^epoch-(\d+)\.pt$")
KEEP = 2


class CheckpointStore:
    """The checkpoints of one trial identity under ``root``."""

    def __init__(self, root: str | os.PathLike, identity: str) -> None:
        if not re.fullmatch(r"[0-9A-Za-z_.-]+", identity):
            raise ValueError(f"checkpoint identity must be a plain name, got {identity!r}")
        self.directory = Path(root) / identity

    def epochs(self) -> list[int]:
        """Epochs with a checkpoint on disk, newest first."""
        if not self.directory.is_dir():
            return []
        found = (_NAME.match(p.name) for p in self.directory.iterdir())
        return sorted((int(m.group(1)) for m in found if m), reverse=True)

    def save(self, epoch: int, state: dict[str, Any]) -> Path | None:
        """Write ``state`` as the checkpoint after ``epoch`` (write, fsync, rename), prune old ones.

        Returns the file, or None (with a warning logged) when it could not be written.
        """
        final = self.directory / f"epoch-{epoch}.pt"
        tmp = None
        try:
            self.directory.mkdir(parents=True, exist_ok=True, mode=0o700)  # the user's alone, on shared disks too
            fd, tmp = tempfile.mkstemp(prefix=".epoch-", suffix=".tmp", dir=self.directory)
            with os.fdopen(fd, "wb") as f:
                torch.save(state, f)
                if faults.armed("checkpoint-write"):
                    f.truncate(f.tell() // 2)
                    f.flush()
                    faults.kill()
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, final)
        except OSError as exc:
            if tmp is not None:
                Path(tmp).unlink(missing_ok=True)
            kept = next((e for e in self.epochs() if e != epoch), None)
            log.warning("could not write checkpoint %s: %s; %s; training goes on", final, exc.strerror or exc,
                        f"the checkpoint of epoch {kept} is kept" if kept else "there is no earlier checkpoint")
            return None
        for old in self.epochs()[KEEP:]:
            (self.directory / f"epoch-{old}.pt").unlink(missing_ok=True)
        return final

    def load_latest(self) -> tuple[int, dict[str, Any]] | None:
        """The newest checkpoint that loads; a torn or corrupt one is skipped (and logged)."""
        if self.directory.is_dir():
            for leftover in self.directory.glob(".epoch-*.tmp"):  # from a writer that was killed
                leftover.unlink(missing_ok=True)
        for epoch in self.epochs():
            path = self.directory / f"epoch-{epoch}.pt"
            try:
                return epoch, torch.load(path, map_location="cpu", weights_only=True)
            except Exception as exc:  # a torn file raises whatever the unpickler meets
                log.warning("skipping unreadable checkpoint %s: %s", path, exc)
        return None

    def clear(self) -> None:
        """Remove this trial's checkpoints (after it completed)."""
        shutil.rmtree(self.directory, ignore_errors=True)
