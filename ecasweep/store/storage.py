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


class NoStudyError(StorageError):
    """A storage that holds no study yet (no database file, an empty one, no Optuna tables): what a
    reader is told without the storage being created."""


def default_storage_url() -> str:
    return os.environ.get("ECASWEEP_STORAGE") or DEFAULT_STORAGE


#: the longest heartbeat interval accepted (a day): Optuna computes a stale trial's deadline with
#: datetime arithmetic, which overflows for intervals of centuries
MAX_HEARTBEAT_SECONDS = 86400


def heartbeat_interval() -> int:
    """Heartbeat interval in seconds (``$ECASWEEP_HEARTBEAT`` overrides; tests use 1)."""
    raw = os.environ.get("ECASWEEP_HEARTBEAT", "").strip()
    if raw and not (raw.isascii() and raw.isdigit() and 0 < int(raw) <= MAX_HEARTBEAT_SECONDS):
        raise StorageError(f"ECASWEEP_HEARTBEAT: expected a whole number of seconds from 1 to "
                           f"{MAX_HEARTBEAT_SECONDS}, got {raw!r}")
    return int(raw) if raw else HEARTBEAT_SECONDS


# --------------------------------------------------------------- what a storage can hold

try:  # Optuna's own limit: study names and attribute keys are VARCHAR(512) in its RDB schema
    from optuna.storages._rdb.models import MAX_INDEXED_STRING_LENGTH as MAX_KEY_LENGTH
except ImportError:  # pragma: no cover - a future Optuna that moved it
    MAX_KEY_LENGTH = 512
#: attribute values and distributions are TEXT in Optuna's schema: 65,535 bytes on MySQL (the
#: smallest of SQLite, PostgreSQL and MySQL), and Optuna stores them as JSON
MAX_TEXT_BYTES = 65535


def _shown(text: str, limit: int = 40) -> str:
    """``text`` short enough for a one-line message."""
    return repr(text) if len(text) <= limit else repr(text[:limit]) + f"... ({len(text):,} characters)"


def check_study_name(name: str, what: str = "study name") -> None:
    """Refuse, with one line, a study name that no storage can hold: empty, longer than Optuna's
    column (``MAX_KEY_LENGTH`` characters, checked on SQLite too, which would accept it, so that a
    study can move between storages), with a NUL character (PostgreSQL refuses it) or bytes that are
    not UTF-8 (an undecodable command-line argument). ``what`` names where it came from.

    >>> check_study_name("kernel-size")
    >>> check_study_name("x" * 513, "--name")
    Traceback (most recent call last):
    ...
    ecasweep.errors.StorageError: --name: expected at most 512 characters (Optuna's storage holds study names of up to 512), got 513 ('xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx'... (513 characters))
    """
    if not isinstance(name, str) or not name.strip():
        raise StorageError(f"{what}: expected a study name, got an empty one")
    if "\x00" in name:
        raise StorageError(f"{what}: {_shown(name)} holds a NUL character, which a storage cannot hold")
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:
        raise StorageError(f"{what}: {_shown(name)} is not valid UTF-8 text (bytes of another encoding?)") from None
    if len(name) > MAX_KEY_LENGTH:
        raise StorageError(f"{what}: expected at most {MAX_KEY_LENGTH} characters (Optuna's storage holds study "
                           f"names of up to {MAX_KEY_LENGTH}), got {len(name):,} ({_shown(name)})")


def check_storable(attrs: dict, what: str) -> None:
    """Refuse what a storage cannot hold among attributes (or parameters) about to be written: a key
    longer than ``MAX_KEY_LENGTH`` characters or a value whose JSON is longer than ``MAX_TEXT_BYTES``
    bytes (MySQL's TEXT), on every storage alike. ``what`` says whose attributes they are."""
    import json

    for key, value in attrs.items():
        if len(str(key)) > MAX_KEY_LENGTH:
            raise StorageError(f"{what}: the name {_shown(str(key))} is longer than the {MAX_KEY_LENGTH} characters "
                               "a storage holds")
        try:
            size = len(json.dumps(value, default=str).encode("utf-8"))
        except (TypeError, ValueError, UnicodeEncodeError) as exc:
            raise StorageError(f"{what}: {key}: a value a storage cannot hold ({exc})") from None
        if size > MAX_TEXT_BYTES:
            raise StorageError(f"{what}: {key}: {size:,} bytes, more than the {MAX_TEXT_BYTES:,} a storage holds "
                               "(MySQL's TEXT)")


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
    """An Optuna storage for ``url``; ``create=False`` (readers) creates nothing: no SQLite or journal
    file, and no Optuna tables in a database server that has none (``NoStudyError`` instead).

    Raises ``StorageError`` with one readable (password-masked) line for a malformed URL, an
    unreachable server, a missing or read-only directory, a file that is not a database, or a
    database that belongs to another program.
    """
    url = normalize_url(url or default_storage_url())
    heartbeat_interval()  # $ECASWEEP_HEARTBEAT is checked whichever storage it is
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
        if not create and not sqlite:  # RDBStorage creates Optuna's tables in a database that has none
            _check_optuna_tables(url, engine_kwargs)
        storage = _rdb_storage(url, engine_kwargs)
    except NoStudyError:
        raise
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


def check_creatable(url: str) -> None:
    """What ``open_storage(url)`` would refuse about a SQLite or journal file it has to create (a
    missing or read-only directory, an in-memory database), checked without creating it: a dry run
    answers as the run would."""
    url = normalize_url(url)
    if url.startswith("sqlite"):
        _check_sqlite(url, create=True)
    elif url.startswith("journal:"):
        file = Path(url[len("journal:"):].removeprefix("//"))
        if not file.exists() and not file.parent.is_dir():
            raise StorageError(f"cannot create journal {file}: directory {file.parent} does not exist")


def _check_optuna_tables(url: str, engine_kwargs: dict) -> None:
    """``NoStudyError`` when the database at ``url`` lacks Optuna's ``studies`` table, asked through
    SQLAlchemy's inspector, which only reads (constructing ``RDBStorage`` would create the schema)."""
    import sqlalchemy

    engine = sqlalchemy.create_engine(url, **engine_kwargs)
    try:
        tables = set(sqlalchemy.inspect(engine).get_table_names())
    finally:
        engine.dispose()
    if "studies" not in tables:
        raise NoStudyError(f"no study in {mask_url(url)} yet (the database has no Optuna tables)")


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
        raise NoStudyError(f"no journal file at {file}")
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
            raise NoStudyError(f"no database at {path} (run a study first, or pass --storage)")
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
            raise NoStudyError(f"no study in {path} yet (an empty database)")
        return
    # Read-write where the file allows it (never creating it): a writer killed mid-transaction leaves a
    # hot journal, which SQLite rolls back on the next read, and a read-only connection cannot.
    mode = "rw" if os.access(path, os.W_OK) else "ro"
    try:
        with sqlite3.connect(f"file:{path}?mode={mode}", uri=True) as conn:
            tables = {row[0] for row in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    except sqlite3.DatabaseError as exc:
        raise StorageError(f"{path} is not a usable SQLite database ({exc})") from None
    if tables and "studies" not in tables:
        raise StorageError(f"{path} is a database of another program (tables: "
                           f"{', '.join(sorted(tables)[:5])}); pass another --storage")
    if not create and not tables:  # reading must not create Optuna's tables under a starting run
        raise NoStudyError(f"no study in {path} yet (an empty database)")


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
    from sqlalchemy.exc import DataError, OperationalError

    if isinstance(exc, optuna.exceptions.StorageInternalError):
        exc = exc.__cause__ or exc
    if not isinstance(exc, (OperationalError, DataError, optuna.exceptions.StorageInternalError)):
        return None
    detail = str(getattr(exc, "orig", None) or exc).strip().splitlines()
    # DataError: a value longer than its column; what ecasweep writes is checked before (check_storable),
    # so this is the last word on what escaped that check, not a traceback
    what = "refused a value" if isinstance(exc, DataError) else "failed"
    return f"the storage {what}: {mask_url(detail[0] if detail else type(exc).__name__)}"


def open_existing(name: str, url: str | None = None) -> optuna.Study:
    """The stored study ``name``, for a command that reads it (or joins it): nothing is created, not
    even the storage; a missing one is ``StorageError`` naming the study."""
    return open_reading(name, url)[1]


def open_reading(name: str, url: str | None = None) -> tuple[BaseStorage, optuna.Study]:
    """``open_existing``, with the storage as ``open_storage`` gave it (for optuna-dashboard)."""
    check_study_name(name)
    url = url or default_storage_url()
    try:
        storage = open_storage(url, create=False)
    except NoStudyError as exc:
        raise StorageError(f"no study named {_shown(name)}: {exc}") from None
    return storage, load_study(storage, name, url)


def load_study(storage: BaseStorage, name: str, url: str = "") -> optuna.Study:
    """An existing study, or ``StorageError`` listing the studies that are there."""
    check_study_name(name)
    try:
        return optuna.load_study(study_name=name, storage=storage)
    except KeyError:
        names = optuna.get_all_study_names(storage)
        where = f" in {mask_url(url)}" if url else ""
        known = ", ".join(names) if names else "none"
        raise StorageError(f"no study named {name!r}{where}; studies there: {known}") from None
