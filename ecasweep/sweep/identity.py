"""Which worker ran a trial: its host and process, and under SLURM its job, array task and node.

A worker records these in the user attributes of every trial it claims (``worker``: ``host:pid``;
``slurm_job``: ``12345``, or ``12345_3`` for task 3 of an array; ``slurm_array_task``;
``slurm_node``; for a requeued job, ``slurm_restarts``), so that ``status`` can say where a cell runs.

Example:
    >>> job_attrs({"SLURM_JOB_ID": "13", "SLURM_ARRAY_JOB_ID": "12", "SLURM_ARRAY_TASK_ID": "1",
    ...            "SLURMD_NODENAME": "gpu07"})
    {'slurm_job': '12_1', 'slurm_node': 'gpu07', 'slurm_array_task': 1}
"""

from __future__ import annotations

import os
import socket
from typing import Any, Mapping


def worker_attrs() -> dict[str, Any]:
    """This process as a trial records it: ``worker`` (host:pid) and the SLURM job's attributes."""
    return {"worker": f"{socket.gethostname()}:{os.getpid()}", **job_attrs()}


def job_attrs(environ: Mapping[str, str] | None = None) -> dict[str, Any]:
    """The SLURM job, array task and node of this process; empty outside SLURM."""
    env = os.environ if environ is None else environ
    if "SLURM_JOB_ID" not in env:
        return {}
    array, task = env.get("SLURM_ARRAY_JOB_ID"), env.get("SLURM_ARRAY_TASK_ID")
    attrs: dict[str, Any] = {"slurm_job": f"{array}_{task}" if array and task else env["SLURM_JOB_ID"],
                             "slurm_node": env.get("SLURMD_NODENAME") or env.get("HOSTNAME", "")}
    if array and task:
        attrs["slurm_array_task"] = int(task)
    if env.get("SLURM_RESTART_COUNT", "0") not in ("", "0"):
        attrs["slurm_restarts"] = int(env["SLURM_RESTART_COUNT"])
    return attrs
