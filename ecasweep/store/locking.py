"""One process at a time enqueues a study's cells, across every worker and machine.

Enqueueing reads which cells need a trial and then adds one for each; two processes doing it at once
would both add a trial for the same cell. The claim step already stands down on such duplicates,
but they would stay in the study as FAIL trials that Optuna's tools and the dashboard show as
failures. ``study_lock`` serialises the step, and also the writing and reading of the study's
spec (several attributes, ``spec_attrs``), so that no process reads half of one:

- PostgreSQL: a session advisory lock (``pg_advisory_lock``) keyed by the study's id;
- MySQL: a named lock (``GET_LOCK``);
- SQLite and journal files (one machine): an exclusive ``flock`` on ``FILE.ecasweep-lock`` beside it
  (never on the database file itself: closing another descriptor of it would drop SQLite's own
  POSIX locks held by this process).

Readers (``status``, ``table``, ``compare``, ``plot``) take ``read_locked`` instead, which writes
nothing: a shared advisory lock on PostgreSQL, and beside a file a shared ``flock`` on the lock file
only if it exists. Where it does not, no writer has locked the study yet; the reader reads, and
reads again under the lock if a writer created the lock file meanwhile.

Example:
    >>> import optuna
    >>> study = optuna.create_study()
    >>> with study_lock(study):
    ...     pass
"""

from __future__ import annotations

import contextlib
import fcntl
import os
from pathlib import Path
from typing import Callable, Iterator, TypeVar

import optuna

from .storage import rdb_engine

#: a fixed first key, so ecasweep's advisory locks do not collide with another program's
_PG_NAMESPACE = 0x0ECA


@contextlib.contextmanager
def study_lock(study: optuna.Study) -> Iterator[None]:
    """Hold the study's enqueue lock for the duration of the block."""
    storage = study._storage
    engine = rdb_engine(storage)
    if engine is not None and engine.dialect.name == "postgresql":
        with _pg_lock(engine, study._study_id):
            yield
    elif engine is not None and engine.dialect.name in ("mysql", "mariadb"):
        with _mysql_lock(engine, f"ecasweep-{study._study_id}"):
            yield
    elif (path := _local_file(storage)) is not None:
        with _file_lock(lock_file(path)):
            yield
    else:  # in-memory or unknown: one process only
        yield


T = TypeVar("T")


def read_locked(study: optuna.Study, read: Callable[[], T]) -> T:
    """``read()`` as a reader of the study under its lock (see the module docstring), creating no
    file: what ``status`` and ``table`` read is never half of what a writer is writing."""
    storage = study._storage
    engine = rdb_engine(storage)
    if engine is not None and engine.dialect.name == "postgresql":
        with _pg_lock(engine, study._study_id, shared=True):
            return read()
    if engine is not None and engine.dialect.name in ("mysql", "mariadb"):
        with _mysql_lock(engine, f"ecasweep-{study._study_id}"):
            return read()
    path = _local_file(storage)
    if path is None:
        return read()
    lock = lock_file(path)
    for _ in range(3):
        try:
            fd = os.open(lock, os.O_RDONLY)  # never O_CREAT: reading leaves no file behind
        except FileNotFoundError:
            value = read()
            if not lock.exists():  # no writer had started before the read ended
                return value
            continue  # a writer created it meanwhile: read again under the lock
        except OSError:  # another user's lock file: read as a reader without one
            return read()
        with os.fdopen(fd) as f:
            fcntl.flock(f, fcntl.LOCK_SH)
            try:
                return read()
            finally:
                fcntl.flock(f, fcntl.LOCK_UN)
    return read()


def lock_file(path: Path) -> Path:
    """The lock file beside a SQLite database or journal file."""
    return path.with_name(path.name + ".ecasweep-lock")


@contextlib.contextmanager
def _pg_lock(engine, key: int, shared: bool = False) -> Iterator[None]:
    import sqlalchemy

    lock, unlock = ("pg_advisory_lock_shared", "pg_advisory_unlock_shared") if shared else \
        ("pg_advisory_lock", "pg_advisory_unlock")
    with engine.connect() as conn:
        conn.execute(sqlalchemy.text(f"SELECT {lock}(:a, :b)"), {"a": _PG_NAMESPACE, "b": key})
        conn.commit()
        try:
            yield
        finally:
            conn.execute(sqlalchemy.text(f"SELECT {unlock}(:a, :b)"), {"a": _PG_NAMESPACE, "b": key})
            conn.commit()


@contextlib.contextmanager
def _mysql_lock(engine, name: str) -> Iterator[None]:
    import sqlalchemy

    with engine.connect() as conn:
        conn.execute(sqlalchemy.text("SELECT GET_LOCK(:n, 300)"), {"n": name})
        try:
            yield
        finally:
            conn.execute(sqlalchemy.text("SELECT RELEASE_LOCK(:n)"), {"n": name})


def _local_file(storage) -> Path | None:
    engine = rdb_engine(storage)
    if engine is not None:
        database = engine.url.database if engine.dialect.name == "sqlite" else None
        return Path(database) if database and database != ":memory:" else None
    backend = getattr(storage, "_backend", None)
    path = getattr(backend, "_file_path", None)
    return Path(path) if path else None


@contextlib.contextmanager
def _file_lock(path: Path) -> Iterator[None]:
    with open(path, "a") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)
