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
import logging
import threading
import time
import warnings
from typing import Any, Callable

import optuna
from optuna.exceptions import UpdateFinishedTrialError
from optuna.storages import BaseStorage
from optuna.trial import TrialState

from ..engine import faults
from ..engine.checkpoint import CheckpointStore
from ..engine.config import RuntimeConfig
from ..engine.train import TrialResult, run_trial
from ..errors import EcasweepError
from ..models import user
from ..spec import Cell, StudySpec
from ..store import liveness
from ..store.results import DUPLICATE_OF, cell_attrs
from ..store.storage import heartbeat_interval
from .cells import INTERRUPTED, _finish_failed, cell_statuses, claim, ensure_cells
from . import reuse, signals
from .identity import worker_attrs
from .slots import POLL_SECONDS

log = logging.getLogger(__name__)

#: how often a waiting worker says again what it waits for
WAIT_REPORT_SECONDS = 30.0
#: metrics kept out of the stored user attributes (large, or stored elsewhere)
_NOT_STORED = ("history",)


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


def run_claimed(study: optuna.Study, trial: optuna.trial.Trial, config, objective: str = "top1",
                prune: bool = False, on_event: Event | None = None, finished: reuse.Finished | None = None) -> str:
    """Run one claimed trial to the end and record it; returns its final state name.

    Errors in the trial (NaN loss, out of memory) are recorded as FAIL with the reason and do not
    stop the worker; Ctrl-C is recorded as ``interrupted`` and re-raised, and so is a user error
    (``EcasweepError``: missing data, a bad value), which would fail every other cell alike.
    """
    emit = on_event or (lambda *_: None)
    try:
        with signals.stops_as_interruptions():  # storing the result is a storage write a stop can cut short
            return _run_and_record(study, trial, config, objective, prune, emit, finished)
    except KeyboardInterrupt:  # at any step, storing the result included: the next run resumes it
        _finish_failed(study, trial, INTERRUPTED)
        emit("end", {"number": trial.number, "state": "FAIL", "reason": INTERRUPTED})
        raise


def _run_and_record(study: optuna.Study, trial: optuna.trial.Trial, config, objective: str, prune: bool,
                    emit: Event, finished: reuse.Finished | None = None) -> str:
    runtime = config.runtime
    # Checkpoints outlive training until the result is stored (cleared below).
    config = dataclasses.replace(config, runtime=dataclasses.replace(runtime, keep_checkpoints=True))
    for key, value in worker_attrs().items():
        trial.set_user_attr(key, value)  # host:pid, and the SLURM job, array task and node
    trial.set_user_attr(reuse.IDENTITY_ATTR, config.identity())  # so that other studies can take its results
    emit("start", {"number": trial.number, "cell": trial.user_attrs.get("cell", ""), "epochs": config.train.epochs})
    source = finished.find(config) if finished is not None else None
    if source is not None:  # trained by another study with the same model, recipe, data and seed
        reuse.take(trial, source)
        study.tell(trial, source.value)
        emit("end", {"number": trial.number, "state": "COMPLETE", "top1": source.attrs.get("top1"),
                     "wall": 0.0, "reused_from": source.label})
        return "COMPLETE"

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
            signals.raise_if_stopping(exc)  # unless a stop caused it (an epoch's storage write cut short)
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
    # Users' modules are imported from where the study recorded them, on this machine: a copy that
    # differs from the one the study was run with is refused before any cell is claimed.
    user.verify(spec.code, study.study_name)
    if spec.search is not None:
        return _search(study, spec, runtime, on_event)
    by_key = {cell.key: cell for cell in spec.cells()}
    finished = reuse.Finished.of(study) if runtime.reuse and reuse.enabled() else None  # other studies' trials, read once
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
            with signals.stops_as_interruptions():
                cell = by_key.get(trial.user_attrs.get("cell"))
                if cell is None:  # a cell of a larger plan (more seeds) enqueued by another run
                    cell = _cell_from_attrs(spec, trial.user_attrs)
            state = run_claimed(study, trial, spec.trial_config(cell, runtime), on_event=on_event, finished=finished)
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


