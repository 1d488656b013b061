"""Where a study's SLURM jobs stand.

A worker in a SLURM job records its job in every trial it claims (``sweep.identity``).
``ecasweep submit`` lists the jobs it submitted for a study in the
study's user attribute ``slurm_jobs``; ``job_statuses`` asks SLURM where each stands: ``sacct``
where the cluster keeps accounting, else ``scontrol`` (which knows jobs until a few minutes after
they end), else the files submitit left in the job folder.

"""

from __future__ import annotations

import datetime as dt
import os
import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path


import optuna
from optuna.trial import TrialState

JOBS_ATTR = "slurm_jobs"
#: SLURM's job states, as ``status`` names them
_STATES = {
    "PENDING": "pending", "REQUEUED": "pending", "REQUEUE_HOLD": "pending", "REQUEUE_FED": "pending",
    "CONFIGURING": "pending", "RESV_DEL_HOLD": "pending", "SUSPENDED": "pending",
    "RUNNING": "running", "COMPLETING": "running", "STAGE_OUT": "running", "RESIZING": "running",
    "COMPLETED": "done",
    "FAILED": "failed", "NODE_FAIL": "failed", "OUT_OF_MEMORY": "failed", "BOOT_FAIL": "failed",
    "DEADLINE": "failed",
    "CANCELLED": "cancelled", "TIMEOUT": "timeout", "PREEMPTED": "preempted",
    "NO_SLURM_HERE": "unknown (no SLURM commands on this machine)",
}
_ENDED_BADLY = ("failed", "cancelled", "timeout", "preempted", "ended")
_QUERY_TIMEOUT = 30


def record_jobs(study: optuna.Study, jobs: list[str], folder: str | os.PathLike) -> None:
    """Add submitted jobs (ids as ``12345`` or ``12345_3``) to the study's list."""
    submitted = dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")
    known = list(study.user_attrs.get(JOBS_ATTR, []))
    known += [{"job": job, "folder": str(folder), "submitted": submitted} for job in jobs]
    study.set_user_attr(JOBS_ATTR, known)


@dataclass(frozen=True)
class JobStatus:
    """One submitted job: its SLURM state, node, the trials it ran, and its log when it ended badly."""

    job: str
    state: str
    slurm_state: str
    node: str
    done: int
    running: str | None
    log: str | None


def job_statuses(study: optuna.Study) -> list[JobStatus]:
    """Where each job submitted for ``study`` stands (empty for a study never submitted)."""
    recorded = study.user_attrs.get(JOBS_ATTR, [])
    if not recorded:
        return []
    here = shutil.which("scontrol") is not None or shutil.which("sacct") is not None
    states = slurm_states([r["job"] for r in recorded]) if here else {}
    trials = study.get_trials(deepcopy=False)
    out = []
    for entry in recorded:
        job, folder = entry["job"], Path(entry["folder"])
        slurm_state, node = states.get(job) or (_from_files(job, folder) if here else ("NO_SLURM_HERE", ""))
        state = _STATES.get(slurm_state, "ended" if slurm_state == "UNKNOWN" else slurm_state.lower())
        mine = [t for t in trials if t.user_attrs.get("slurm_job") == job]
        running = next((f"#{t.number} {t.user_attrs.get('cell', '')}" for t in mine if t.state == TrialState.RUNNING),
                       None)
        done = sum(t.state == TrialState.COMPLETE for t in mine)
        log = str(_log_path(folder, job)) if state in _ENDED_BADLY else None
        out.append(JobStatus(job, state, slurm_state, node or next((t.user_attrs.get("slurm_node", "") for t in mine), ""),
                             done, running, log))
    return out


def slurm_states(jobs: list[str]) -> dict[str, tuple[str, str]]:
    """``{job: (SLURM state, node)}`` for the jobs SLURM still knows about."""
    ids = sorted({job.split("_")[0] for job in jobs})
    if not ids:
        return {}
    found = _query(["sacct", "-n", "-P", "-X", "-o", "JobID,State,NodeList", "-j", ",".join(ids)], _parse_sacct)
    missing = [i for i in ids if not any(job.split("_")[0] == i for job in found)]
    for job_id in missing:
        found.update(_query(["scontrol", "show", "job", "-o", job_id], _parse_scontrol))
    return found


def _query(command: list[str], parse) -> dict[str, tuple[str, str]]:
    try:
        result = subprocess.run(command, capture_output=True, text=True, timeout=_QUERY_TIMEOUT)
    except (OSError, subprocess.TimeoutExpired):
        return {}
    return parse(result.stdout) if result.returncode == 0 else {}


def _parse_sacct(text: str) -> dict[str, tuple[str, str]]:
    found = {}
    for line in text.splitlines():
        parts = line.split("|")
        if len(parts) >= 3:
            for job in _expand(parts[0]):
                found[job] = (parts[1].split()[0] if parts[1] else "UNKNOWN", _node(parts[2]))
    return found


def _parse_scontrol(text: str) -> dict[str, tuple[str, str]]:
    found = {}
    for line in text.splitlines():
        fields = dict(f.split("=", 1) for f in line.split() if "=" in f)
        if "JobState" not in fields:
            continue
        array, task = fields.get("ArrayJobId"), fields.get("ArrayTaskId")
        name = f"{array}_[{task}]" if array and task else fields.get("JobId", "")
        for job in _expand(name):
            found[job] = (fields["JobState"], _node(fields.get("NodeList", "")))
    return found


def _expand(name: str) -> list[str]:
    """``12_[0-2,5%4]`` -> ``12_0, 12_1, 12_2, 12_5``; any other id unchanged."""
    match = re.fullmatch(r"(\d+)_\[([\d,\-]+)(%\d+)?\]", name)
    if not match:
        return [name]
    tasks = []
    for part in match.group(2).split(","):
        low, _, high = part.partition("-")
        tasks += range(int(low), int(high or low) + 1)
    return [f"{match.group(1)}_{t}" for t in tasks]


def _node(text: str) -> str:
    return "" if text in ("(null)", "None assigned", "None") else text


def _from_files(job: str, folder: Path) -> tuple[str, str]:
    """A job SLURM has forgotten, from what submitit and slurmstepd wrote in its folder."""
    result = folder / f"{job}_0_result.pkl"
    if result.exists():
        try:
            import pickle

            outcome = pickle.loads(result.read_bytes())[0]
        except Exception:
            outcome = "error"
        return ("COMPLETED" if outcome == "success" else "FAILED"), ""
    log = _log_path(folder, job)
    text = log.read_text(errors="replace")[-4000:] if log.exists() else ""
    if "DUE TO TIME LIMIT" in text:
        return "TIMEOUT", ""
    if "DUE TO PREEMPTION" in text:
        return "PREEMPTED", ""
    if "CANCELLED" in text:
        return "CANCELLED", ""
    return "UNKNOWN", ""


def _log_path(folder: Path, job: str) -> Path:
    """The job's stderr, as submitit names it (``<job>_<task>_log.err``, task 0)."""
    return folder / f"{job}_0_log.err"


def study_jobs(study_name: str, storage_url: str | None = None) -> list[JobStatus]:
    """``job_statuses`` of a stored study, by name (for ``ecasweep status``)."""
    from ..store.storage import default_storage_url, load_study, open_storage

    url = storage_url or default_storage_url()
    return job_statuses(load_study(open_storage(url, create=False), study_name, url))
