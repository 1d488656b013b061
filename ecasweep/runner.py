"""What the commands do, above the sweep: open storage and study, run workers, show progress.

``run`` is ``ecasweep run`` (create or resume a study, run its cells on one or more workers, return
the records for the table); ``join`` is ``ecasweep worker``; ``status`` and ``results`` read a
study without touching it.
"""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass
from typing import Any, Sequence

import optuna
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from rich.table import Table

from .config import RuntimeConfig
from .data import load_dataset
from .results import SPEC_ATTR, TrialRecord, read_records
from .spec import Arm, Cell, StudySpec, load_study
from .storage import default_storage_url, load_study as load_stored, normalize_url, open_storage, sqlite_path
from .sweep import (CellStatus, cell_statuses, default_checkpoint_dir, ensure_cells, open_study, plan_slots,
                    run_workers, stored_spec, work)


@dataclass
class RunOutcome:
    study: optuna.Study
    spec_dict: dict[str, Any]
    records: list[TrialRecord]
    failed: int


def run(study_name: str, profile: str = "quick", overrides: Sequence[str] = (), storage_url: str | None = None,
        name: str | None = None, devices: Sequence[str] = ("auto",), workers: int = 1,
        checkpoint_dir: str | None = None, dry_run: bool = False, console: Console | None = None) -> RunOutcome | None:
    """Run or resume ``study_name``; None for a dry run (which prints the plan instead)."""
    # What a user can get wrong is checked before the storage is opened, so a mistake writes nothing.
    spec = load_study(study_name, profile, overrides)
    slots = plan_slots(devices, workers)
    load_dataset(spec.data, seed=0)  # a missing dataset or an impossible subset
    url = storage_url or default_storage_url()
    if dry_run:
        _print_plan(_existing_study(spec, url, name), spec, slots, console or Console())
        return None
    study = open_study(spec, open_storage(url), name, url)
    stored = stored_spec(study)
    if stored.seeds > spec.seeds:  # fewer seeds than planned does not shrink a study
        spec = dataclasses.replace(spec, seeds=stored.seeds)
    ensure_cells(study, spec, retry_failed=True)
    ckpt = checkpoint_dir or default_checkpoint_dir(study.study_name)
    with StudyProgress(study, spec, console, len(slots)) as progress:
        if len(slots) == 1:
            runtime = RuntimeConfig(device=slots[0].device, threads=slots[0].threads, checkpoint_dir=ckpt)
            work(study, spec, runtime, on_event=progress.on_event)
        else:
            run_workers(study, url, slots, ckpt, on_poll=progress.refresh)
            # The workers have left; cells whose worker died are this process's to finish.
            runtime = RuntimeConfig(device=slots[0].device, threads=slots[0].threads * len(slots) if
                                    slots[0].device == "cpu" else None, checkpoint_dir=ckpt)
            work(study, spec, runtime, on_event=progress.on_event)
    statuses = cell_statuses(study, spec)
    return RunOutcome(study, study.user_attrs.get(SPEC_ATTR, spec.to_dict()), read_records(study),
                      sum(s.state == "failed" for s in statuses))


def join(study_name: str, storage_url: str | None = None, device: str = "auto", threads: int | None = None,
         checkpoint_dir: str | None = None, console: Console | None = None) -> dict[str, int]:
    """Work on a study that exists in the storage until none of its cells is left."""
    url = storage_url or default_storage_url()
    study = load_stored(open_storage(url, create=False), study_name, url)
    spec = stored_spec(study)
    runtime = RuntimeConfig(device=device, threads=threads,
                            checkpoint_dir=checkpoint_dir or default_checkpoint_dir(study.study_name))
    with StudyProgress(study, spec, console, 1) as progress:
        return work(study, spec, runtime, on_event=progress.on_event)


def status(study_name: str, storage_url: str | None = None) -> list[CellStatus]:
    """Where each cell of a stored study stands; for a search study, each of its trials."""
    url = storage_url or default_storage_url()
    study = load_stored(open_storage(url, create=False), study_name, url)
    spec = stored_spec(study)
    if spec.search is None:
        return cell_statuses(study, spec)
    states = {"COMPLETE": "done", "PRUNED": "pruned", "RUNNING": "running", "WAITING": "waiting", "FAIL": "failed"}
    return [CellStatus(Cell(r.cell, Arm(r.arm, str(r.arm_params.get("attention")), {}), r.backbone, r.seed),
                       states[r.state], r) for r in read_records(study)]


def results(study_name: str, storage_url: str | None = None) -> tuple[optuna.Study, dict[str, Any], list[TrialRecord]]:
    """A stored study, its spec (as stored) and its trials, for reports."""
    url = storage_url or default_storage_url()
    study = load_stored(open_storage(url, create=False), study_name, url)
    return study, stored_spec(study).to_dict(), read_records(study)  # refuses a study ecasweep did not create


# ----------------------------------------------------------------------------------------- display

class StudyProgress:
    """A Rich display of the study (cells done / running / failed / left, ETA) and the current trial."""

    def __init__(self, study: optuna.Study, spec: StudySpec, console: Console | None, n_workers: int) -> None:
        self.study, self.spec, self.console, self.n_workers = study, spec, console, n_workers
        self.progress: Progress | None = None
        self._last_poll = 0.0

    def __enter__(self) -> "StudyProgress":
        if self.console is None:
            return self
        self.progress = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                                 TextColumn("{task.fields[info]}"), TimeElapsedColumn(), TimeRemainingColumn(),
                                 console=self.console)
        self.progress.__enter__()
        total = self.spec.search.n_trials if self.spec.search else len(self.spec.cells())
        self.study_task = self.progress.add_task(f"{self.study.study_name}", total=total, info="")
        self.trial_task = self.progress.add_task("trial", total=None, info="", visible=False)
        self.refresh(force=True)
        return self

    def __exit__(self, *exc: object) -> None:
        if self.progress is not None:
            self.refresh(force=True)
            self.progress.__exit__(*exc)

    def refresh(self, force: bool = False) -> None:
        if self.progress is None or (not force and time.monotonic() - self._last_poll < 1.0):
            return
        self._last_poll = time.monotonic()
        if self.spec.search:
            states = [t.state.name for t in self.study.get_trials(deepcopy=False)]
            counts = {"done": states.count("COMPLETE") + states.count("PRUNED"), "running": states.count("RUNNING"),
                      "failed": states.count("FAIL")}
        else:
            counts = {}
            for s in cell_statuses(self.study, self.spec):
                counts[s.state] = counts.get(s.state, 0) + 1
        left = counts.get("todo", 0) + counts.get("waiting", 0)
        self.progress.update(self.study_task, completed=counts.get("done", 0),
                             info=f"running {counts.get('running', 0)} · failed {counts.get('failed', 0)} · left {left}")

    def on_event(self, kind: str, data: dict[str, Any]) -> None:
        if self.progress is None:
            return
        if kind == "start":
            self.progress.reset(self.trial_task, total=data["epochs"], visible=True,
                                description=f"  #{data['number']} {data['cell']}", info="")
        elif kind == "epoch":
            top1 = f" · top-1 {data['top1']:.2f}" if "top1" in data else ""
            self.progress.update(self.trial_task, completed=data["epoch"],
                                 info=f"loss {data['train_loss']:.3f} · {data['images_per_second']:.0f} img/s{top1}")
        elif kind == "end":
            self.progress.update(self.trial_task, visible=False)
            self.refresh(force=True)


def _existing_study(spec: StudySpec, url: str, name: str | None) -> optuna.Study | None:
    """The study if it is already stored (checked against ``spec``), else None; creates nothing."""
    path = sqlite_path(normalize_url(url)) if normalize_url(url).startswith("sqlite") else None
    if path is not None and not path.exists():
        return None
    storage = open_storage(url, create=False)
    if (name or spec.name) not in optuna.get_all_study_names(storage):
        return None
    return open_study(spec, storage, name, url)


#: a plan of more cells than this is summarised (counts, the first and last cells), not listed
PLAN_ROWS = 40


def _print_plan(study: optuna.Study | None, spec: StudySpec, slots, console: Console) -> None:
    from rich import box

    from .estimate import estimate_seconds

    statuses = cell_statuses(study, spec) if study else [CellStatus(c, "todo") for c in spec.cells()]
    title = study.study_name if study else f"{spec.name} (not started)"
    table = Table(title=f"{title}: {_count(len(statuses), 'cell')} ({spec.profile} profile)",
                  box=box.SIMPLE_HEAD, pad_edge=False)
    table.add_column("cell", no_wrap=True)
    table.add_column("state")
    table.add_column("trial")
    shown = statuses if len(statuses) <= PLAN_ROWS else [*statuses[:5], None, *statuses[-5:]]
    for s in shown:
        if s is None:
            table.add_row(f"... {len(statuses) - 10:,} more ...", "", "")
        else:
            table.add_row(s.cell.key, s.state, str(s.record.number) if s.record else "")
    console.print(table)
    states: dict[str, int] = {}
    for s in statuses:
        states[s.state] = states.get(s.state, 0) + 1
    if len(statuses) > PLAN_ROWS:
        console.print(", ".join(f"{state}: {n:,}" for state, n in sorted(states.items())))
    from .spec import alias_notes

    for line in alias_notes(spec):
        console.print(line, highlight=False)
    remaining = [s.cell for s in statuses if s.state != "done"]
    seconds, how = estimate_seconds(spec, remaining, read_records(study) if study else [], slots)
    devices: dict[str, int] = {}
    for slot in slots:
        devices[slot.device] = devices.get(slot.device, 0) + 1
    on = ", ".join(f"{n} x {device}" if n > 1 else device for device, n in devices.items())
    console.print(f"{_count(len(remaining), 'cell')} to run on {_count(len(slots), 'worker')} ({on}): "
                  f"about {_duration(seconds)} ({how})")


def _count(n: int, word: str) -> str:
    return f"{n:,} {word}" + ("" if n == 1 else "s")


def _duration(seconds: float) -> str:
    return f"{seconds / 60:.1f} min" if seconds < 2 * 3600 else f"{seconds / 3600:,.1f} h"
