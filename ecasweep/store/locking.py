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

Example:
    >>> import optuna
    >>> study = optuna.create_study()
    >>> with study_lock(study):
    ...     pass
"""

from __future__ import annotations

import contextlib
import fcntl
from pathlib import Path
from typing import Iterator

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
        with _file_lock(path.with_name(path.name + ".ecasweep-lock")):
            yield
    else:  # in-memory or unknown: one process only
        yield


@contextlib.contextmanager
def _pg_lock(engine, key: int) -> Iterator[None]:
    import sqlalchemy

    with engine.connect() as conn:
        conn.execute(sqlalchemy.text("SELECT pg_advisory_lock(:a, :b)"), {"a": _PG_NAMESPACE, "b": key})
        conn.commit()
        try:
            yield
        finally:
            conn.execute(sqlalchemy.text("SELECT pg_advisory_unlock(:a, :b)"), {"a": _PG_NAMESPACE, "b": key})
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
