"""Optuna storages from a URL: SQLite (default), PostgreSQL/MySQL, or a journal file.

``sqlite:///ecasweep.db`` is the default (``--storage`` or ``$ECASWEEP_STORAGE`` override it); a
bare file name ending in ``.db``/``.sqlite`` means SQLite, and ``journal:PATH`` or a ``.log`` file
Optuna's journal file storage. RDB storages run with Optuna's heartbeat so that a trial whose
worker died is detected as stale and run again; SQLite gets a long busy timeout so that several
worker processes on one file wait for each other instead of failing with "database is locked",
and every SQLite transaction starts with ``BEGIN IMMEDIATE``: Python's sqlite3 otherwise runs the
``SELECT ... FOR UPDATE`` of a claim outside the transaction (SQLite has no row locks), and two
workers could both move one WAITING trial to RUNNING. An in-memory SQLite URL is refused: it keeps
nothing and no other worker can see it. Passwords in URLs are masked in every message
(``mask_url``).

Example:
    >>> mask_url("postgresql://me:secret@db.example/sweeps")
    'postgresql://me:***@db.example/sweeps'
"""

from __future__ import annotations

import os
import re
import sqlite3
import time
from pathlib import Path

import optuna
from optuna.storages import BaseStorage, JournalStorage, RDBStorage
from optuna.storages.journal import JournalFileBackend

from ..errors import StorageError

DEFAULT_STORAGE = "sqlite:///ecasweep.db"
#: seconds between heartbeats of a running trial; a trial is stale after GRACE_FACTOR of them
HEARTBEAT_SECONDS = 20
GRACE_FACTOR = 3
SQLITE_BUSY_TIMEOUT = 300


def default_storage_url() -> str:
    return os.environ.get("ECASWEEP_STORAGE") or DEFAULT_STORAGE


def heartbeat_interval() -> int:
    """Heartbeat interval in seconds (``$ECASWEEP_HEARTBEAT`` overrides; tests use 1)."""
    raw = os.environ.get("ECASWEEP_HEARTBEAT", "").strip()
    if raw and not (raw.isdigit() and int(raw) > 0):
        raise StorageError(f"ECASWEEP_HEARTBEAT: expected a whole number of seconds > 0, got {raw!r}")
    return int(raw) if raw else HEARTBEAT_SECONDS


_USERINFO_PASSWORD = re.compile(r"(://[^:/@\s]*:)([^@\s]*)(@)")
_QUERY_PASSWORD = re.compile(r"([?&](?:password|passwd|pwd)=)([^&\s'\"]*)", re.IGNORECASE)


def mask_url(url: str) -> str:
    """``url`` with any password (``user:PASSWORD@`` or ``?password=PASSWORD``) replaced by ``***``.

    >>> mask_url("postgresql://me@db/sweeps?sslmode=require&password=secret")
    'postgresql://me@db/sweeps?sslmode=require&password=***'
    """
    return _QUERY_PASSWORD.sub(r"\1***", _USERINFO_PASSWORD.sub(r"\1***\3", str(url)))


#: where a job started by ``submit`` finds the storage's password (never in a file ecasweep writes)
PASSWORD_ENV = "ECASWEEP_STORAGE_PASSWORD"


def without_password(url: str) -> tuple[str, str | None]:
    """``url`` with its password taken out, and the password (None when it has none).

    What is written to disk (a SLURM job's pickled function, a log) carries the first; the second
    travels in the job's environment (``PASSWORD_ENV``) and ``with_password`` puts it back.

    >>> without_password("postgresql://me:s3cret@db/sweeps")
    ('postgresql://me@db/sweeps', 's3cret')
    >>> without_password("postgresql://me@db/sweeps?sslmode=require&password=s3cret")
    ('postgresql://me@db/sweeps?sslmode=require', 's3cret')
    """
    match = _USERINFO_PASSWORD.search(url)
    if match and match.group(2):
        return url[:match.start()] + match.group(1)[:-1] + "@" + url[match.end():], match.group(2)
    query = _QUERY_PASSWORD.search(url)
    if query and query.group(2):
        rest = url[:query.start()] + url[query.end():]
        if query.group(1).startswith("?") and "&" in rest[query.start():query.start() + 1]:
            rest = rest[:query.start()] + "?" + rest[query.start() + 1:]
        return rest, query.group(2)
    return url, None


def with_password(url: str, password: str | None) -> str:
    """``url`` with ``password`` as its user's password (``without_password`` undone).

    >>> with_password("postgresql://me@db/sweeps", "s3cret")
    'postgresql://me:s3cret@db/sweeps'
    >>> with_password("postgresql://db/sweeps?sslmode=require", "s3cret")
    'postgresql://db/sweeps?sslmode=require&password=s3cret'
    """
    if not password or without_password(url)[1] is not None:
        return url
    user = re.match(r"^([^:/]+://)([^:/@\s]+)@", url)
    if user:
        return f"{user.group(1)}{user.group(2)}:{password}@{url[user.end():]}"
    return f"{url}{'&' if '?' in url else '?'}password={password}"


def mask_text(text: str, url: str) -> str:
    """``text`` with the password of ``url`` masked wherever it appears."""
    secrets = [m.group(2) for m in (*_USERINFO_PASSWORD.finditer(url), *_QUERY_PASSWORD.finditer(url)) if m.group(2)]
    text = mask_url(text)
    for secret in secrets:
        text = text.replace(secret, "***")
    return text


def normalize_url(url: str) -> str:
    """Accept a bare SQLite or journal file name as well as a URL."""
    url = url.strip()
    if not url:
        raise StorageError("storage URL is empty; expected e.g. sqlite:///ecasweep.db")
    if "://" in url or url.startswith("journal:"):
        return url
    if url.endswith((".db", ".sqlite", ".sqlite3")):
        return f"sqlite:///{url}"
    if url.endswith((".log", ".jsonl")):
        return f"journal:{url}"
    raise StorageError(f"storage {mask_url(url)!r} is not a URL; expected sqlite:///FILE.db, "
                       "postgresql://USER@HOST/DB, mysql://..., or journal:FILE.log")


def open_storage(url: str | None = None, *, create: bool = True) -> BaseStorage:
    """An Optuna storage for ``url``; ``create=False`` refuses to create a new SQLite file.

    Raises ``StorageError`` with one readable (password-masked) line for a malformed URL, an
    unreachable server, a missing or read-only directory, a file that is not a database, or a
    database that belongs to another program.
    """
    url = normalize_url(url or default_storage_url())
    if url.startswith("journal:"):
        return _journal(url[len("journal:"):].removeprefix("//"), create)
    sqlite = url.startswith("sqlite")
    if sqlite:
        _check_sqlite(url, create)
        # isolation_level None: the driver issues no BEGIN of its own; _serialise_sqlite issues one.
        engine_kwargs = {"connect_args": {"timeout": SQLITE_BUSY_TIMEOUT, "isolation_level": None}}
    else:
        engine_kwargs = {"pool_pre_ping": True}
        if url.startswith("postgresql"):
            engine_kwargs["connect_args"] = {"connect_timeout": 10}
    try:
        storage = _rdb_storage(url, engine_kwargs)
    except ImportError:
        hint = "pip install 'ecasweep[postgres]'" if url.startswith("postgres") else \
            "install the SQLAlchemy driver named in the URL (e.g. mysql+pymysql:// needs PyMySQL)"
        raise StorageError(f"cannot open storage {mask_url(url)}: its database driver is not installed; {hint}") from None
    except Exception as exc:  # SQLAlchemy raises many kinds; all mean "cannot use this URL"
        reason = mask_text(str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__, url)
        raise StorageError(f"cannot open storage {mask_url(url)}: {reason}") from None
    if sqlite:
        _serialise_sqlite(storage.engine)
    return storage


def _rdb_storage(url: str, engine_kwargs: dict) -> RDBStorage:
    """Optuna's RDBStorage; tried again when another process was creating the same database's
    tables at the same moment (a duplicate-key error on Optuna's schema version row, or "table ...
    already exists" when both saw an empty database)."""
    interval = heartbeat_interval()
    for attempt in range(5):
        try:
            return RDBStorage(url, engine_kwargs=engine_kwargs, heartbeat_interval=interval,
                              grace_period=GRACE_FACTOR * interval)
        except Exception as exc:
            if attempt == 4 or not _creating_concurrently(exc):
                raise
            time.sleep(0.2 * (attempt + 1))
    raise AssertionError("unreachable")


def _creating_concurrently(exc: BaseException) -> bool:
    from sqlalchemy.exc import IntegrityError, OperationalError

    for e in (exc, exc.__cause__, exc.__context__):
        if isinstance(e, IntegrityError) or (isinstance(e, OperationalError) and "already exists" in str(e)):
            return True
    return False


def _serialise_sqlite(engine) -> None:
    """Start every transaction with BEGIN IMMEDIATE (the write lock), so a claim is atomic."""
    from sqlalchemy import event

    @event.listens_for(engine, "begin")
    def _begin(conn) -> None:
        conn.exec_driver_sql("BEGIN IMMEDIATE")

    engine.dispose()  # connections made before the listener existed are not reused


def _journal(path: str, create: bool) -> JournalStorage:
    file = Path(path)
    if not create and not file.exists():
        raise StorageError(f"no journal file at {file}")
    if not file.parent.exists():
        raise StorageError(f"cannot create journal {file}: directory {file.parent} does not exist")
    try:
        return JournalStorage(JournalFileBackend(str(file)))
    except (OSError, ValueError) as exc:
        raise StorageError(f"cannot open journal {file}: {exc}") from None


def sqlite_path(url: str) -> Path | None:
    """The file of a ``sqlite:///`` URL (None for in-memory)."""
    path = url.split(":///", 1)[1] if ":///" in url else ""
    path = path.split("?", 1)[0]
    return Path(path) if path and path != ":memory:" else None


def _check_sqlite(url: str, create: bool) -> None:
    path = sqlite_path(url)
    if path is None:
        raise StorageError(f"storage {url!r} is an in-memory database: it keeps nothing and other workers "
                           "cannot see it; give a file, e.g. sqlite:///ecasweep.db")
    if not path.exists():
        if not create:
            raise StorageError(f"no database at {path} (run a study first, or pass --storage)")
        if not path.parent.is_dir():
            raise StorageError(f"cannot create database {path}: directory {path.parent} does not exist")
        if not os.access(path.parent, os.W_OK):
            raise StorageError(f"cannot create database {path}: directory {path.parent} is not writable")
        return
    if path.is_dir():
        raise StorageError(f"storage {path} is a directory, not a database file")
    if create and not os.access(path, os.W_OK):
        raise StorageError(f"database {path} is read-only; ecasweep needs to write to it")
    if path.stat().st_size == 0:
        if not create:  # being created by a run that just started: nothing to read yet
            raise StorageError(f"no study in {path} yet (an empty database)")
        return
    try:
        with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as conn:
            tables = {row[0] for row in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    except sqlite3.DatabaseError as exc:
        raise StorageError(f"{path} is not a usable SQLite database ({exc})") from None
    if tables and "studies" not in tables:
        raise StorageError(f"{path} is a database of another program (tables: "
                           f"{', '.join(sorted(tables)[:5])}); pass another --storage")
    if not create and not tables:  # reading must not create Optuna's tables under a starting run
        raise StorageError(f"no study in {path} yet (an empty database)")


def rdb_engine(storage: BaseStorage):
    """The SQLAlchemy engine behind an RDB storage (Optuna wraps it in a cache), else None."""
    for candidate in (storage, getattr(storage, "_backend", None)):
        if isinstance(candidate, RDBStorage):
            return candidate.engine
    return None


def storage_failure(exc: BaseException) -> str | None:
    """One masked line for a storage that failed after it was opened; None for any other error.

    A database server that went away, a disk that filled up, a lock held for longer than the busy
    timeout: SQLAlchemy's ``OperationalError`` and Optuna's ``StorageInternalError`` wrapping it.
    """
    from sqlalchemy.exc import OperationalError

    if isinstance(exc, optuna.exceptions.StorageInternalError):
        exc = exc.__cause__ or exc
    if not isinstance(exc, (OperationalError, optuna.exceptions.StorageInternalError)):
        return None
    detail = str(getattr(exc, "orig", None) or exc).strip().splitlines()
    return f"the storage failed: {mask_url(detail[0] if detail else type(exc).__name__)}"


def load_study(storage: BaseStorage, name: str, url: str = "") -> optuna.Study:
    """An existing study, or ``StorageError`` listing the studies that are there."""
    try:
        return optuna.load_study(study_name=name, storage=storage)
    except KeyError:
        names = optuna.get_all_study_names(storage)
        where = f" in {mask_url(url)}" if url else ""
        known = ", ".join(names) if names else "none"
        raise StorageError(f"no study named {name!r}{where}; studies there: {known}") from None
