"""What a cluster can share: storages that workers on several nodes can use safely.

Jobs on a cluster run on whichever nodes the scheduler picks, so each must reach the same storage
and see the others' writes. A database server (PostgreSQL, MySQL) does that. SQLite does not: a
file on a node's local disk is invisible to the other nodes, and on a network filesystem (NFS,
Lustre, GPFS) its locks are unreliable, so two workers could both claim one cell
(https://www.sqlite.org/faq.html#q5). Optuna's journal file works on a shared filesystem (its lock
is a file created atomically) but not on a node's local disk, and only the user knows which a path
is: a journal is accepted for cluster jobs only when the user says it is shared.

``ecasweep worker`` is checked too, as far as a worker can tell where it runs: it refuses SQLite
on a network filesystem, and SQLite inside a SLURM job, unless it was started by an ``ecasweep run``
on the same machine (``mark_local_workers``), whose workers share one host.

Example:
    >>> check_cluster_storage("postgresql://me@db.example/sweeps") is None
    True
"""

from __future__ import annotations

import os
import socket
from pathlib import Path
from typing import Mapping
from urllib.parse import urlsplit

from ..errors import StorageError
from ..store.storage import mask_url, normalize_url, sqlite_path

#: set in the environment of the workers an ``ecasweep run`` starts: the host they share
LOCAL_RUN_ENV = "ECASWEEP_LOCAL_RUN_HOST"
NETWORK_FILESYSTEMS = frozenset({
    "nfs", "nfs4", "cifs", "smb3", "smbfs", "lustre", "gpfs", "beegfs", "ceph", "glusterfs",
    "fuse.glusterfs", "fuse.sshfs", "fuse.cephfs", "afs", "panfs", "wekafs", "orangefs", "pvfs2",
})
_LOOPBACK = ("localhost", "127.0.0.1", "::1", "")
_USE_INSTEAD = "use PostgreSQL or MySQL, e.g. --storage postgresql://USER@HOST/DB"


def check_cluster_storage(url: str, *, shared_journal: bool = False) -> str | None:
    """Refuse, with ``StorageError``, a storage that jobs on several nodes cannot share.

    Returns a warning line for a storage that only this machine reaches (a database server on
    ``localhost``: right on a one-node cluster, wrong on any other), else None.
    """
    url = normalize_url(url)
    if url.startswith("sqlite"):
        raise StorageError(f"storage {mask_url(url)} is SQLite, which jobs on other nodes cannot share (a local "
                           f"file is invisible to them; on a network filesystem its locks are unreliable); "
                           f"{_USE_INSTEAD}")
    if url.startswith("journal:"):
        if not shared_journal:
            raise StorageError(f"storage {url} is a journal file, which jobs on other nodes can share only on a "
                               f"shared filesystem; pass --shared-journal if it is on one, or {_USE_INSTEAD}")
        return None
    host = urlsplit(url).hostname or ""
    if host in _LOOPBACK:
        return (f"storage {mask_url(url)} is on this machine ({host or 'local socket'}): only jobs on this "
                "node will reach it; give the database server's name if the cluster has other nodes")
    return None


def check_worker_storage(url: str, environ: Mapping[str, str] | None = None) -> None:
    """Refuse SQLite for a worker that may share it with workers on other machines (see above)."""
    environ = os.environ if environ is None else environ
    url = normalize_url(url)
    if not url.startswith("sqlite") or environ.get(LOCAL_RUN_ENV) == socket.gethostname():
        return
    path = sqlite_path(url)
    fstype = filesystem_type(path) if path is not None else ""
    if fstype in NETWORK_FILESYSTEMS:
        raise StorageError(f"storage {mask_url(url)} is SQLite on a network filesystem ({fstype}), where its "
                           f"locks are unreliable and two workers could run one cell; {_USE_INSTEAD}")
    if "SLURM_JOB_ID" in environ:
        raise StorageError(f"storage {mask_url(url)} is SQLite, and this worker runs in a SLURM job, where other "
                           f"workers run on other nodes and cannot share it; {_USE_INSTEAD}")


def mark_local_workers(environ: dict[str, str] | None = None) -> None:
    """Mark the workers this process starts as local to this host (they may share SQLite)."""
    (os.environ if environ is None else environ)[LOCAL_RUN_ENV] = socket.gethostname()


def filesystem_type(path: Path) -> str:
    """The type of the filesystem holding ``path`` (from /proc/mounts; "" where unknown)."""
    try:
        mounts = Path("/proc/mounts").read_text().splitlines()
    except OSError:
        return ""
    target = Path(os.path.abspath(path))
    best, kind = "", ""
    for line in mounts:
        fields = line.split()
        if len(fields) < 3:
            continue
        point = fields[1].replace("\\040", " ")
        inside = str(target) == point or str(target).startswith(point.rstrip("/") + "/")
        if inside and len(point) > len(best):
            best, kind = point, fields[2]
    return kind
