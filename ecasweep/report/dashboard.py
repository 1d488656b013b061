"""optuna-dashboard on a study's storage, for ``ecasweep dashboard`` (the optional extra
``ecasweep[dashboard]``).

A thin adapter: it opens the storage as every ecasweep command does (so SQLite readers wait for
workers instead of failing with "database is locked"), checks the study is there, and hands the
storage to ``optuna_dashboard.run_server`` on 127.0.0.1 only: the dashboard can edit and delete
studies, so it is not served to the network.

Example:
    >>> serve("kernel-size", "sqlite:///ecasweep.db", port=8080)   # doctest: +SKIP
    optuna-dashboard for kernel-size: http://127.0.0.1:8080/dashboard/studies/1 (Ctrl-C stops it)
"""

from __future__ import annotations

import socket
from typing import Callable

from ..errors import EcasweepError
from ..store.storage import default_storage_url, open_reading

HOST = "127.0.0.1"
INSTALL = "pip install 'ecasweep[dashboard]'"


def check_port(port: int) -> None:
    """``EcasweepError`` unless this process can listen on ``HOST:port`` now (as the dashboard's server
    binds it: with SO_REUSEADDR, so a port a closed server left in TIME_WAIT is free)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((HOST, port))
        except OSError as exc:
            raise EcasweepError(f"cannot serve on {HOST}:{port}: {exc.strerror or exc}; pass another --port") from None


def study_url(study_id: int, port: int) -> str:
    """Where optuna-dashboard shows one study."""
    return f"http://{HOST}:{port}/dashboard/studies/{study_id}"


def serve(study_name: str, storage_url: str | None = None, port: int = 8080,
          announce: Callable[[str], None] = print) -> None:
    """Serve optuna-dashboard for the storage of ``study_name`` until Ctrl-C.

    Raises ``EcasweepError`` when optuna-dashboard is not installed, the study is not in the
    storage, or the port cannot be listened on (tried before the address is announced).
    """
    if not 0 < port < 65536:
        raise EcasweepError(f"--port: expected a port number from 1 to 65535, got {port}")
    try:
        import optuna_dashboard
    except ImportError:
        raise EcasweepError(f"optuna-dashboard is not installed; install it with: {INSTALL}") from None
    url = storage_url or default_storage_url()
    storage, study = open_reading(study_name, url)  # creates nothing: no file, no table
    check_port(port)
    announce(f"optuna-dashboard for {study.study_name}: {study_url(study._study_id, port)} (Ctrl-C stops it)")
    try:
        optuna_dashboard.run_server(storage, host=HOST, port=port)
    except OSError as exc:  # the port is taken, or not ours to use
        raise EcasweepError(f"cannot serve on {HOST}:{port}: {exc.strerror or exc}; pass another --port") from None
