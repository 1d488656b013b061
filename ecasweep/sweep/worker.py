"""Sweeps on Optuna: cells become trials, claimed exactly once by any number of workers.

How a grid study is scheduled (Optuna's ``GridSampler`` alone can run a cell twice when workers race
and never retries a failed cell, so ecasweep claims cells itself):

1. ``ensure_cells`` enqueues one WAITING trial for every cell that has no COMPLETE, RUNNING or
   WAITING trial, with the cell's factors as its parameters (``params.cell_trial``); at the start
   of a run, failed cells are enqueued again.
2. A worker claims a WAITING trial by moving it to RUNNING with the storage's
   ``set_trial_state_values``, which succeeds for exactly one caller (a row lock in PostgreSQL and
   MySQL, the write lock in SQLite). Should two workers have enqueued the same cell, the claimer that
   finds the cell already RUNNING or COMPLETE stands down (its trial is closed as FAIL with
   ``duplicate_of``, and reports ignore it).
3. The claimer records the trial's first heartbeat before the claim, and a thread records one every
   interval while the trial runs (``liveness``). A worker killed outright, at any moment, stops
   beating; its trial turns stale, ``ensure_cells`` marks it FAIL and enqueues the cell again, and
   the new trial resumes from the cell's checkpoint (checkpoints are keyed by the trial
   configuration's identity, not the trial number). A worker with nothing to claim waits for the
   cells running elsewhere and says which, on which worker, and how old their heartbeats are.
4. Ctrl-C marks the running trial FAIL with ``fail_reason = "interrupted"``; the next run resumes it.
5. A trial's checkpoints are kept until its result is stored, so a worker killed between the end of
   training and the storage write loses only the write. A worker whose heartbeat came late (an
   overloaded machine) may find its trial marked stale by another worker when it is done; it then
   stores the result in the cell's re-enqueued trial instead, if no one has claimed that yet.

Search studies (``layout = "search"``) let Optuna's TPE sampler propose settings, report validation
top-1 every epoch, and prune with a ``MedianPruner``.

Example:
    >>> from ecasweep.spec import load_study
    >>> spec = load_study("kernel-size", overrides=["data.dataset=synthetic"])   # doctest: +SKIP
    >>> summary = run_study(spec, "sqlite:///ecasweep.db")                         # doctest: +SKIP
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

import optuna
from optuna.exceptions import UpdateFinishedTrialError
from optuna.storages import BaseStorage
from optuna.trial import TrialState

from ..engine import faults
from ..store import liveness
from . import signals
from ..engine.checkpoint import CheckpointStore
from ..engine.config import RuntimeConfig
from ..engine.devices import cpu_count, resolve_device
from ..errors import EcasweepError, SpecError
from ..launch.jobs import job_attrs
from ..store.locking import study_lock
from ..store.params import cell_trial
from ..store.results import DUPLICATE_OF, FAIL_REASON, HASH_ATTR, TrialRecord, cell_attrs, latest_by_cell, read_records
from .signals import Terminated
from ..spec import Cell, StudySpec
from ..store.stored_spec import read_spec, write_spec
from ..store.storage import heartbeat_interval, mask_url
from ..engine.train import TrialResult, run_trial

log = logging.getLogger(__name__)

INTERRUPTED = "interrupted"
POLL_SECONDS = 1.0
#: how often a waiting worker says again what it waits for
WAIT_REPORT_SECONDS = 30.0
#: metrics kept out of the stored user attributes (large, or stored elsewhere)
_NOT_STORED = ("history",)


@dataclass(frozen=True)
class CellStatus:
    """Where one cell stands: done, running, waiting, failed or todo."""

    cell: Cell
    state: str
    record: TrialRecord | None = None

    @property
    def reason(self) -> str | None:
        if self.state != "failed" or self.record is None:
            return None
        return self.record.fail_reason or "stale: its worker stopped without a word"


_STATE_NAMES = {"COMPLETE": "done", "RUNNING": "running", "WAITING": "waiting", "FAIL": "failed", "PRUNED": "done"}


# ----------------------------------------------------------------------------------------- studies

def open_study(spec: StudySpec, storage: BaseStorage, name: str | None = None, url: str = "") -> optuna.Study:
    """Create the study, or load it and check it was run with the same recipe.

    Raising the number of seeds extends a study; any other difference in what changes results is
    refused with the differences named, unless another study name is given.
    """
    name = name or spec.name
    study = optuna.create_study(storage=storage, study_name=name, direction="maximize",
                                load_if_exists=True, **_search_strategy(spec))
    # The spec is several attributes written one by one: a process that read them while another
    # writes would see half a spec. Writers and readers take the study's lock (``locking``).
    with study_lock(study):
        _check_or_write_spec(study, spec, name, url)
    return study


def _check_or_write_spec(study: optuna.Study, spec: StudySpec, name: str, url: str) -> None:
    stored = read_spec(study.user_attrs)
    if stored is None:
        study.set_user_attr(HASH_ATTR, spec.results_hash())
        write_spec(study, spec.to_dict())
        return
    if study.user_attrs.get(HASH_ATTR) != spec.results_hash():
        differences = "; ".join(spec.diff(stored)) or "the recipe"
        where = f" in {mask_url(url)}" if url else ""
        raise SpecError(f"study {name!r}{where} was run with another recipe ({differences}); "
                        f"resume with the same settings, or start a new study with --name")
    # Seeds only grow; what does not change results (claims, margins, descriptions) follows the
    # study file, so that `table` shows the claims as they now read.
    merged = extended(spec, StudySpec.from_dict(stored))
    if _canonical(merged.to_dict()) != _canonical(stored):
        write_spec(study, merged.to_dict())


def extended(spec: StudySpec, stored: StudySpec) -> StudySpec:
    """``spec`` with the seeds of ``stored`` where it had more: a plan never shrinks a study.

    >>> from ecasweep.spec import load_study
    >>> small, big = load_study("table2", overrides=["seeds=1"]), load_study("table2", overrides=["seeds=3"])
    >>> extended(small, big).seeds
    3
    """
    extra = dict(stored.extra_seeds)
    for key, n in spec.extra_seeds.items():
        extra[key] = max(n, extra.get(key, 0))
    return dataclasses.replace(spec, seeds=max(spec.seeds, stored.seeds), extra_seeds=extra)


def _canonical(value: Any) -> str:
    return json.dumps(value, sort_keys=True, default=str)


def stored_spec(study: optuna.Study) -> StudySpec:
    """The spec a study was created with (how workers on other machines learn the recipe)."""
    with study_lock(study):  # never half of a spec another process is writing
        stored = read_spec(study.user_attrs)
    if stored is None:
        raise EcasweepError(f"study {study.study_name!r} was not created by ecasweep (no spec stored)")
    return StudySpec.from_dict(stored)


def _search_strategy(spec: StudySpec) -> dict[str, Any]:
    if spec.search is None:
        return {}
    sampler = optuna.samplers.TPESampler(constant_liar=True) if spec.search.sampler == "tpe" \
        else optuna.samplers.RandomSampler()
    pruner = optuna.pruners.MedianPruner(n_startup_trials=3, n_warmup_steps=1) \
        if spec.search.pruner == "median" else optuna.pruners.NopPruner()
    return {"sampler": sampler, "pruner": pruner}


# ------------------------------------------------------------------------------------------- cells

def cell_statuses(study: optuna.Study, spec: StudySpec) -> list[CellStatus]:
    """The state of every planned cell, from the trials in the study."""
    latest = latest_by_cell(read_records(study))
    statuses = []
    for cell in spec.cells():
        record = latest.get(cell.key)
        statuses.append(CellStatus(cell, _STATE_NAMES[record.state] if record else "todo", record))
    return statuses


def ensure_cells(study: optuna.Study, spec: StudySpec, retry_failed: bool,
                 watch: liveness.StaleWatch | None = None) -> int:
    """Enqueue a WAITING trial for each cell that needs one; returns how many were enqueued.

    Stale trials are failed first (``liveness``). Cells whose worker died (stale) or was
    interrupted are always enqueued again; cells that failed with an error only when
    ``retry_failed`` (at the start of a run), so a failing cell does not loop within one run. One
    process at a time enqueues (``locking.study_lock``), so no cell gets two trials.
    """
    liveness.fail_stale(study, watch)
    with study_lock(study):
        return _enqueue_missing(study, spec, retry_failed)


def _enqueue_missing(study: optuna.Study, spec: StudySpec, retry_failed: bool) -> int:
    enqueued = 0
    # Longest first (deeper backbones), so that parallel workers do not end on one long straggler.
    for status in sorted(cell_statuses(study, spec), key=lambda s: -_depth(s.cell.backbone)):
        retry = status.state == "failed" and (retry_failed or status.record.fail_reason in (None, INTERRUPTED))
        if status.state == "todo" or retry:
            cell = status.cell
            study.add_trial(cell_trial(spec, cell))  # enqueued, its factors as parameters (params.py)
            enqueued += 1
    return enqueued


def _depth(backbone: str) -> int:
    digits = "".join(c for c in backbone.rsplit("-", 1)[-1] if c.isdigit())
    return int(digits) if digits else 0


def claim(study: optuna.Study) -> optuna.trial.Trial | None:
    """Take one WAITING trial for this worker, or None when there is none left.

    The first heartbeat is recorded before the trial moves to RUNNING, so that a worker killed
    between the two steps leaves a trial that turns stale (``liveness``), never one that stays
    RUNNING forever. Moving WAITING to RUNNING succeeds for exactly one caller.
    """
    storage = study._storage
    for frozen in study.get_trials(deepcopy=False, states=(TrialState.WAITING,)):
        try:
            liveness.beat(storage, frozen._trial_id)
            if not storage.set_trial_state_values(frozen._trial_id, TrialState.RUNNING):
                continue
        except UpdateFinishedTrialError:
            continue
        trial = optuna.trial.Trial(study, frozen._trial_id)
        try:
            if faults.armed("claimed"):
                faults.kill()
            cell = frozen.user_attrs.get("cell")
            rivals = [t.number for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING, TrialState.COMPLETE))
                      if t.user_attrs.get("cell") == cell and t.number != frozen.number
                      and DUPLICATE_OF not in t.user_attrs]
            if rivals:
                storage.set_trial_user_attr(frozen._trial_id, DUPLICATE_OF, min(rivals))
                storage.set_trial_state_values(frozen._trial_id, TrialState.FAIL)
                continue
        except KeyboardInterrupt:  # a stop right after the claim: resumable at once, not stale later
            _finish_failed(study, trial, INTERRUPTED)
            raise
        return trial
    return None


class _Heartbeat:
    """Records a heartbeat for a running trial every interval, in a daemon thread."""

    def __init__(self, storage: BaseStorage, trial_id: int) -> None:
        self.storage, self.trial_id = storage, trial_id
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True, name=f"heartbeat-{trial_id}")

    def _run(self) -> None:
        while True:
            try:
                liveness.beat(self.storage, self.trial_id)
            except UpdateFinishedTrialError:  # marked stale by another worker: see _record_result
                pass
            except Exception as exc:  # a missed beat must not kill the trial
                log.warning("heartbeat failed: %s", exc)
            if self.stop.wait(heartbeat_interval()):
                return

    def __enter__(self) -> "_Heartbeat":
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        self.thread.join()


# ------------------------------------------------------------------------------------------ trials

Event = Callable[[str, dict[str, Any]], None]


def _store_result(trial: optuna.trial.Trial, result: TrialResult) -> None:
    stored = [(key, value) for key, value in result.metrics().items() if key not in _NOT_STORED]
    for i, (key, value) in enumerate(stored):
        if i == len(stored) // 2 and faults.armed("store-result"):
            faults.kill()
        trial.set_user_attr(key, value)


def _record_result(study: optuna.Study, trial: optuna.trial.Trial, result: TrialResult, value: float) -> bool:
    """Store a finished trial's metrics and value; False if no trial could take them.

    When this trial was marked stale meanwhile (see the module docstring), the result goes to the
    cell's re-enqueued WAITING trial, claimed here.
    """
    try:
        _store_result(trial, result)
        study.tell(trial, value)
        return True
    except UpdateFinishedTrialError:
        pass
    cell = trial.user_attrs.get("cell")
    for frozen in study.get_trials(deepcopy=False, states=(TrialState.WAITING,)):
        if frozen.user_attrs.get("cell") != cell or DUPLICATE_OF in frozen.user_attrs:
            continue
        try:
            if not study._storage.set_trial_state_values(frozen._trial_id, TrialState.RUNNING):
                continue
        except UpdateFinishedTrialError:
            continue
        adopted = optuna.trial.Trial(study, frozen._trial_id)
        adopted.set_user_attr("worker", trial.user_attrs.get("worker"))
        adopted.set_user_attr("stale_trial", trial.number)
        log.warning("trial %d was marked stale while it ran (its heartbeat came late); its result is "
                    "stored in trial %d of the same cell", trial.number, adopted.number)
        _store_result(adopted, result)
        study.tell(adopted, value)
        return True
    log.warning("trial %d was marked stale while it ran and its cell %s is being run again elsewhere; "
                "that run resumes from this one's last checkpoint", trial.number, cell)
    return False


def _finish_failed(study: optuna.Study, trial: optuna.trial.Trial, reason: str) -> None:
    try:
        trial.set_user_attr(FAIL_REASON, reason[:500])
        study.tell(trial, state=TrialState.FAIL, skip_if_finished=True)
    except UpdateFinishedTrialError:  # finished meanwhile (stored, or marked stale by another worker)
        pass


def run_claimed(study: optuna.Study, trial: optuna.trial.Trial, config, objective: str = "top1",
                prune: bool = False, on_event: Event | None = None) -> str:
    """Run one claimed trial to the end and record it; returns its final state name.

    Errors in the trial (NaN loss, out of memory) are recorded as FAIL with the reason and do not
    stop the worker; Ctrl-C is recorded as ``interrupted`` and re-raised, and so is a user error
    (``EcasweepError``: missing data, a bad value), which would fail every other cell alike.
    """
    emit = on_event or (lambda *_: None)
    try:
        return _run_and_record(study, trial, config, objective, prune, emit)
    except KeyboardInterrupt:  # at any step, storing the result included: the next run resumes it
        _finish_failed(study, trial, INTERRUPTED)
        emit("end", {"number": trial.number, "state": "FAIL", "reason": INTERRUPTED})
        raise


def _run_and_record(study: optuna.Study, trial: optuna.trial.Trial, config, objective: str, prune: bool,
                    emit: Event) -> str:
    runtime = config.runtime
    # Checkpoints outlive training until the result is stored (cleared below).
    config = dataclasses.replace(config, runtime=dataclasses.replace(runtime, keep_checkpoints=True))
    for key, value in {"worker": f"{socket.gethostname()}:{os.getpid()}", **job_attrs()}.items():
        trial.set_user_attr(key, value)  # and the SLURM job, array task and node (launch.jobs)
    emit("start", {"number": trial.number, "cell": trial.user_attrs.get("cell", ""), "epochs": config.train.epochs})

    def on_epoch(epoch: int, metrics: dict[str, Any]) -> None:
        trial.set_user_attr("epoch", epoch)  # for displays that read the storage (runner.StudyProgress)
        emit("epoch", {"number": trial.number, "epoch": epoch, **metrics})
        if prune and metrics.get(f"val_{objective}") is not None:
            trial.report(metrics[f"val_{objective}"], epoch)
            if trial.should_prune():
                raise optuna.TrialPruned(f"pruned after epoch {epoch}")

    with _Heartbeat(study._storage, trial._trial_id):
        try:
            result = run_trial(config, on_epoch=on_epoch)
        except EcasweepError as exc:  # a user error (missing data, bad value): every cell would fail alike
            _finish_failed(study, trial, f"{type(exc).__name__}: {exc}")
            raise
        except optuna.TrialPruned:
            study.tell(trial, state=TrialState.PRUNED)
            emit("end", {"number": trial.number, "state": "PRUNED"})
            return "PRUNED"
        except Exception as exc:  # recorded with the trial; the sweep goes on with other cells
            reason = f"{type(exc).__name__}: {exc}"
            log.warning("trial %d failed: %s", trial.number, reason)
            _finish_failed(study, trial, reason)
            emit("end", {"number": trial.number, "state": "FAIL", "reason": reason})
            return "FAIL"
    value = result.val_top1 if objective == "val_top1" else result.top1
    if _record_result(study, trial, result, value) and runtime.checkpoint_dir and not runtime.keep_checkpoints:
        CheckpointStore(runtime.checkpoint_dir, config.identity()).clear()
    emit("end", {"number": trial.number, "state": "COMPLETE", "top1": result.top1, "wall": result.wall_seconds})
    return "COMPLETE"


# ----------------------------------------------------------------------------------------- workers

def work(study: optuna.Study, spec: StudySpec, runtime: RuntimeConfig, wait: bool = True,
         on_event: Event | None = None) -> dict[str, int]:
    """Claim and run trials until the study has none left; returns counts by final state.

    With ``wait``, a worker with nothing left to claim waits for cells running elsewhere, so that
    a cell whose worker dies is picked up again once it turns stale.
    """
    if spec.search is not None:
        return _search(study, spec, runtime, on_event)
    by_key = {cell.key: cell for cell in spec.cells()}
    counts = {"COMPLETE": 0, "FAIL": 0, "PRUNED": 0}
    watch, report = liveness.StaleWatch(), _WaitReport(on_event)
    while True:
        trial = claim(study)
        if trial is None:
            if ensure_cells(study, spec, retry_failed=False, watch=watch):
                continue
            elsewhere = liveness.running(study)
            if wait and elsewhere:
                report(elsewhere, watch.grace)
                time.sleep(POLL_SECONDS)
                continue
            _clear_done_checkpoints(study, spec, runtime)
            return counts
        report.reset()
        try:
            cell = by_key.get(trial.user_attrs.get("cell"))
            if cell is None:  # a cell of a larger plan (more seeds) enqueued by another run
                cell = _cell_from_attrs(spec, trial.user_attrs)
            state = run_claimed(study, trial, spec.trial_config(cell, runtime), on_event=on_event)
        except KeyboardInterrupt:  # a claimed trial is never left RUNNING by a stop
            _finish_failed(study, trial, INTERRUPTED)
            raise
        counts[state] += 1


class _WaitReport:
    """Says which cells a worker waits for, where they run and how fresh their heartbeats are: at
    once, then every ``WAIT_REPORT_SECONDS`` while the wait lasts (an ``"waiting"`` event; logged
    at INFO when there is no listener, e.g. workers started by ``run``, whose display shows them)."""

    def __init__(self, on_event: Event | None) -> None:
        self.on_event = on_event
        self.last: float | None = None

    def __call__(self, trials: list[liveness.RunningTrial], grace: float) -> None:
        now = time.monotonic()
        if self.last is not None and now - self.last < WAIT_REPORT_SECONDS:
            return
        self.last = now
        lines = [t.describe(grace) for t in trials]
        if self.on_event is not None:
            self.on_event("waiting", {"cells": lines})
        else:
            log.info("waiting for %d cell(s) running elsewhere: %s", len(lines), "; ".join(lines))

    def reset(self) -> None:
        self.last = None


def _clear_done_checkpoints(study: optuna.Study, spec: StudySpec, runtime: RuntimeConfig) -> None:
    """Remove checkpoints left by a worker killed after storing its result and before clearing them."""
    if not runtime.checkpoint_dir or runtime.keep_checkpoints:
        return
    for status in cell_statuses(study, spec):
        if status.state == "done":
            CheckpointStore(runtime.checkpoint_dir, spec.trial_config(status.cell, runtime).identity()).clear()


def _cell_from_attrs(spec: StudySpec, attrs: dict[str, Any]) -> Cell:
    arm = next(a for a in spec.arms if a.id == attrs["arm"])
    return Cell(attrs["cell"], arm, attrs["backbone"], int(attrs["seed"]))


def _search(study: optuna.Study, spec: StudySpec, runtime: RuntimeConfig, on_event: Event | None) -> dict[str, int]:
    counts = {"COMPLETE": 0, "FAIL": 0, "PRUNED": 0}
    backbone = spec.backbones[0]
    liveness.fail_stale(study)  # a trial whose worker died counts as failed, not as running forever
    while len(study.get_trials(deepcopy=False, states=(TrialState.COMPLETE, TrialState.PRUNED,
                                                       TrialState.RUNNING, TrialState.FAIL))) < spec.search.n_trials:
        with warnings.catch_warnings():  # ecasweep records the heartbeats itself (see _Heartbeat)
            warnings.filterwarnings("ignore", message="Heartbeat of storage is supposed to be used")
            trial = study.ask()
        params = suggest(trial, spec.search.space)
        config = spec.search_trial_config(params, backbone, 0, runtime)
        config = dataclasses.replace(config, train=dataclasses.replace(config.train, eval_every=1))
        arm_id = "search:" + ",".join(f"{k}={v}" for k, v in params.items())
        for key, value in cell_attrs(f"{backbone}/trial-{trial.number}", arm_id, backbone, 0,
                                     {"attention": params.get("attention"), **params}).items():
            trial.set_user_attr(key, value)
        counts[run_claimed(study, trial, config, objective="val_top1", prune=True, on_event=on_event)] += 1
    return counts


def suggest(trial: optuna.trial.Trial, space: dict[str, Any]) -> dict[str, Any]:
    """Parameters for one search trial: lists are categorical, {low, high} tables are floats.

    gamma and beta only matter for an adaptive kernel size, so they are only suggested then.
    """
    params: dict[str, Any] = {}
    for name, domain in space.items():
        if name in ("gamma", "beta") and params.get("k", "adaptive") != "adaptive":
            continue
        if isinstance(domain, dict):
            params[name] = trial.suggest_float(name, float(domain["low"]), float(domain["high"]))
        else:
            params[name] = trial.suggest_categorical(name, list(domain))
    return params


# ---------------------------------------------------------------------------------- orchestration

@dataclass
class Slot:
    """One worker: its device and its share of the CPU threads."""

    device: str
    threads: int


#: more worker processes than this on one machine is a typo (each imports PyTorch and holds a model)
MAX_WORKERS = 256


def plan_slots(devices: Sequence[str] | None, workers: int | None) -> list[Slot]:
    """Worker slots: one per listed device (``cpu,cpu`` is two CPU workers), or ``workers`` workers
    on the one device given; ``auto`` is one worker per GPU, else the CPU. CPU threads are split
    between CPU workers. ``workers`` None or 0 on a lone CPU means one single-threaded worker per
    core: small CIFAR-style models use one core better than two (see docs/performance.md)."""
    names = [d.strip() for d in (devices or ["auto"]) if d.strip()] or ["auto"]
    if workers is not None and not 0 <= workers <= MAX_WORKERS or len(names) > MAX_WORKERS:
        raise SpecError(f"--workers: expected 0 (one per core on the CPU, one per GPU) to {MAX_WORKERS} "
                        f"worker processes, got {workers if workers else len(names)}")
    if names == ["auto"]:
        device = resolve_device("auto")
        if device.type == "cuda":
            import torch

            names = [f"cuda:{i}" for i in range(torch.cuda.device_count())]
        else:
            names = [device.type]
    if not workers and names == ["cpu"]:
        workers = cpu_count()
    if workers and workers > 1:
        if len(names) != 1:
            raise SpecError("--workers N repeats one device; with several --devices, list one per worker")
        names = names * workers
    for name in names:
        resolve_device(name)  # refuse a device that does not exist before any worker starts
    n_cpu = sum(1 for n in names if n == "cpu")
    cpu_threads = max(1, cpu_count() // max(1, n_cpu))
    return [Slot(n, cpu_threads if n == "cpu" else max(1, cpu_count() // len(names))) for n in names]


def worker_command(study_name: str, slot: Slot, checkpoint_dir: str) -> list[str]:
    """The command line of one worker. The storage URL is not on it: it goes in the worker's
    environment (``worker_env``), since every local user can read a process's arguments (``ps``)
    and the URL may hold a password."""
    return [sys.executable, "-m", "ecasweep", "worker", study_name, "--device", slot.device,
            "--threads", str(slot.threads), "--checkpoint-dir", checkpoint_dir, "--quiet"]


def worker_env(url: str) -> dict[str, str]:
    return {**os.environ, "ECASWEEP_STORAGE": url}


def run_workers(study: optuna.Study, url: str, slots: list[Slot], checkpoint_dir: str,
                on_poll: Callable[[], None] | None = None) -> list[int]:
    """Start one ``ecasweep worker`` process per slot and wait; returns their exit codes.

    On Ctrl-C or SIGTERM the workers are sent the same signal, which marks their trials
    interrupted, and this waits for them before re-raising: no worker outlives ``run``.
    """
    env = {**worker_env(url), signals.PARENT_ENV: str(os.getpid())}  # a worker stops if this process dies
    procs = [subprocess.Popen(worker_command(study.study_name, slot, checkpoint_dir), env=env) for slot in slots]
    try:
        while any(p.poll() is None for p in procs):
            if on_poll:
                on_poll()
            time.sleep(POLL_SECONDS)
    except KeyboardInterrupt as exc:
        sig = signal.SIGTERM if isinstance(exc, Terminated) else signal.SIGINT
        for p in procs:
            if p.poll() is None:
                p.send_signal(sig)
        for p in procs:
            p.wait()
        raise
    return [p.returncode for p in procs]


def default_checkpoint_dir(study_name: str) -> str:
    return str(Path(os.environ.get("ECASWEEP_CHECKPOINTS", ".ecasweep/checkpoints")) / _safe(study_name))


def _safe(name: str) -> str:
    """``name`` as one plain path component: never empty, ``.``, ``..``, absolute or nested."""
    safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in name).lstrip(".")
    return safe or "study"
