"""What the commands do, above the sweep: open storage and study, run workers, show progress.

``run`` is ``ecasweep run`` (create or resume a study, run its cells on one or more workers, return
the records for the table); ``join`` is ``ecasweep worker``; ``status`` and ``results`` read a
study without touching it.
"""

from __future__ import annotations

import os
import statistics
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import optuna
from rich.console import Console
from rich.progress import BarColumn, Progress, ProgressColumn, TextColumn
from rich.table import Table

from ..engine.config import RuntimeConfig
from ..models.user import verify as verify_code
from ..engine.data import load_dataset
from ..engine.devices import cpu_count
from ..errors import EcasweepError
from ..store.locking import read_locked
from ..store.results import HASH_ATTR, SPEC_ATTR, TrialRecord, cell_attrs, read_records
from ..store.stored_spec import read_spec, spec_attrs
from ..spec import Arm, Cell, StudySpec, load_study
from ..store.storage import (NoStudyError, check_creatable, check_storable, check_study_name, default_storage_url,
                             heartbeat_interval, load_study as load_stored, open_existing,
                             open_storage)
from .cells import INTERRUPTED, CellStatus, cell_statuses, ensure_cells
from .slots import default_checkpoint_dir, plan_slots, run_workers
from .study import check_recipe, extended, open_study, spec_of, stored_spec
from . import reuse
from .worker import work


@dataclass
class RunOutcome:
    study: optuna.Study
    spec_dict: dict[str, Any]
    records: list[TrialRecord]
    failed: int


def run(study_name: str, profile: str = "quick", overrides: Sequence[str] = (), storage_url: str | None = None,
        name: str | None = None, devices: Sequence[str] = ("auto",), workers: int = 1,
        checkpoint_dir: str | None = None, dry_run: bool = False, console: Console | None = None,
        until_resolved: bool = False) -> RunOutcome | None:
    """Run or resume ``study_name``; None for a dry run (which prints the plan instead).

    ``until_resolved``: the run is a round of ``--until-resolved``, which needs claims to resolve.
    """
    # What a user can get wrong is checked before the storage is opened, so a mistake writes nothing,
    # and a dry run refuses what the run would refuse.
    spec = load_study(study_name, profile, overrides)
    check_before_writing(spec, name, until_resolved)
    url = storage_url or default_storage_url()
    check_creatable(url)  # a file storage it cannot create, or a file that is no database
    heartbeat_interval()  # $ECASWEEP_HEARTBEAT, which every storage reads
    reuse.enabled()  # $ECASWEEP_REUSE
    check_directory(checkpoint_dir or default_checkpoint_dir(name or spec.name),
                    "--checkpoint-dir" if checkpoint_dir else "the checkpoint folder")
    slots = plan_slots(devices, workers)
    load_dataset(spec.data, seed=0)  # a missing dataset or an impossible subset
    if dry_run:
        _print_plan(_existing_study(spec, url, name), spec, slots, console or Console())
        return None
    study = open_study(spec, open_storage(url), name, url)
    spec = extended(spec, stored_spec(study))  # fewer seeds than planned do not shrink a study
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
    check_study_name(study_name)
    check_directory(checkpoint_dir or default_checkpoint_dir(study_name),
                    "--checkpoint-dir" if checkpoint_dir else "the checkpoint folder")
    url = storage_url or default_storage_url()
    study = open_existing(study_name, url)
    spec = stored_spec(study)
    verify_code(spec.code, study.study_name)  # this machine's copy of users' modules, before any display
    runtime = RuntimeConfig(device=device, threads=threads,
                            checkpoint_dir=checkpoint_dir or default_checkpoint_dir(study.study_name))
    with StudyProgress(study, spec, console, 1) as progress:
        return work(study, spec, runtime, on_event=progress.on_event)


def status(study_name: str, storage_url: str | None = None) -> list[CellStatus]:
    """Where each cell of a stored study stands; for a search study, each of its trials."""
    study = open_existing(study_name, storage_url)
    spec = _read_stored_spec(study)
    if spec.search is None:
        return cell_statuses(study, spec)
    states = {"COMPLETE": "done", "PRUNED": "pruned", "RUNNING": "running", "WAITING": "waiting", "FAIL": "failed"}
    return [CellStatus(Cell(r.cell, Arm(r.arm, str(r.arm_params.get("attention")), {}), r.backbone, r.seed),
                       states[r.state], r) for r in read_records(study)]


def results(study_name: str, storage_url: str | None = None) -> tuple[optuna.Study, dict[str, Any], list[TrialRecord]]:
    """A stored study, its spec (as stored) and its trials, for reports."""
    study = open_existing(study_name, storage_url)
    return study, _read_stored_spec(study).to_dict(), read_records(study)  # refuses a study ecasweep did not create


def _read_stored_spec(study: optuna.Study) -> StudySpec:
    """``study.stored_spec`` for a reader: under the study's lock as readers take it, which creates no
    file (``locking.read_locked``)."""
    return spec_of(study, read_locked(study, lambda: study.user_attrs))


# ------------------------------------------------------------------------- checks before writing

def check_before_writing(spec: StudySpec, name: str | None = None, until_resolved: bool = False) -> None:
    """What ``run``, its dry run and ``submit`` refuse before anything is written: a study name or
    anything else of the study that the storage cannot hold (``storage.check_storable``), and
    ``--until-resolved`` for a study without claims."""
    check_study_name(name if name is not None else spec.name,
                     "--name" if name is not None else f"{spec.source}: name (the study name; --name overrides it)")
    if until_resolved and not spec.claims:
        raise EcasweepError(f"--until-resolved: study {spec.name!r} states no claims ([[claims]] in its file), so "
                            "there is nothing to resolve; run it without --until-resolved")
    check_storable({**spec_attrs(spec.to_dict()), HASH_ATTR: spec.results_hash()}, f"{spec.source}: the study's spec")
    if spec.search is not None:
        check_storable({key: None for key in spec.search.space}, f"{spec.source}: [search] space")
        return
    from optuna.distributions import distribution_to_json

    from ..store.params import study_distributions

    check_storable({key: distribution_to_json(d) for key, d in study_distributions(spec).items()},
                   f"{spec.source}: the parameters of its trials")
    seen: set[str] = set()
    for cell in spec.cells():  # one cell per arm: their attributes differ by the seed alone
        if cell.arm.id not in seen:
            seen.add(cell.arm.id)
            check_storable(cell_attrs(cell.key, cell.arm.id, cell.backbone, cell.seed, cell.arm.kwargs),
                           f"{spec.source}: arm {cell.arm.id}")


def check_directory(path: str | Path, what: str, option: str = "--checkpoint-dir") -> None:
    """Refuse a folder that cannot be created: a name longer than the filesystem allows (a long study
    name makes a long checkpoint folder), a file in the way, or a parent that is not writable."""
    path = Path(path)
    longest = max((len(os.fsencode(part)) for part in path.parts), default=0)
    existing = next((p for p in (path, *path.parents) if p.exists()), Path("."))
    try:
        limit = os.pathconf(existing if existing.is_dir() else existing.parent, "PC_NAME_MAX")
    except (OSError, ValueError):
        limit = 255
    if longest > limit:
        raise EcasweepError(f"{what} {_short(str(path))}: a folder name of {longest} bytes, longer than this "
                            f"filesystem's {limit}; use a shorter study name (--name) or give {option}")
    if not existing.is_dir():
        raise EcasweepError(f"{what} {path}: {existing} is a file, not a folder")
    if existing != path and not os.access(existing, os.W_OK | os.X_OK):
        raise EcasweepError(f"{what} {path}: cannot create it, {existing} is not writable")


def _short(text: str, limit: int = 60) -> str:
    return text if len(text) <= limit else f"{text[:limit]}... ({len(text):,} characters)"


# ----------------------------------------------------------------------------------------- display

class StudyProgress:
    """A Rich display of the study and of every running trial, read from the storage.

    The study's line: cells done of all, then running, failed, interrupted and left, and an ETA: the
    expected time of the cells left and of the running ones' remainder, over the workers. Expected
    times per (backbone, arm) come from the study's finished trials, else from the dry run's timed
    probe, so the ETA shows from the start. One line per running trial, whichever process runs it
    (worker processes record their epoch with the trial): cell, worker, epoch, time against its
    expected time.
    """

    def __init__(self, study: optuna.Study, spec: StudySpec, console: Console | None, n_workers: int) -> None:
        self.study, self.spec, self.console, self.n_workers = study, spec, console, max(1, n_workers)
        self.progress: Progress | None = None
        self._last_poll = 0.0
        self._trials: dict[int, Any] = {}  # trial number -> task id
        self._epoch_info: dict[int, str] = {}  # this process's trials: loss and images/s of the last epoch
        self._expected: dict[tuple[str, str], float] = {}

    def __enter__(self) -> "StudyProgress":
        if self.console is None:
            return self
        # The probe costs a few seconds; only a terminal shows the ETA while the run lasts.
        self._expected = _expected_seconds(self.study, self.spec, self.n_workers, probe=self.console.is_terminal)
        # Short descriptions and one status column: the bars line up and long cell ids come last.
        self.progress = Progress(TextColumn("{task.description}"), _TimeBar(bar_width=20), _Status(),
                                 console=self.console)
        self.progress.__enter__()
        total = self.spec.search.n_trials if self.spec.search else len(self.spec.cells())
        self.study_task = self.progress.add_task(f"{self.study.study_name}", total=total, info="", eta=None)
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
        trials = self.study.get_trials(deepcopy=False)
        left_cells: list[tuple[str, str]] = []
        if self.spec.search:
            states = [t.state.name for t in trials]
            counts = {"done": states.count("COMPLETE") + states.count("PRUNED"), "running": states.count("RUNNING"),
                      "failed": states.count("FAIL")}
            counts["todo"] = max(0, self.spec.search.n_trials - len(trials))
        else:
            counts = {}
            for s in cell_statuses(self.study, self.spec):
                state = "interrupted" if s.state == "failed" and s.record.fail_reason == INTERRUPTED else s.state
                counts[state] = counts.get(state, 0) + 1
                if state != "done" and state != "running":
                    left_cells.append((s.cell.backbone, s.cell.arm.id))
        left = counts.get("todo", 0) + counts.get("waiting", 0)
        running = [t for t in trials if t.state.name == "RUNNING" and "cell" in t.user_attrs]
        remaining = sum(self._expect(pair) or 0.0 for pair in left_cells)
        remaining += sum(max(0.0, (self._expect(_pair(t)) or 0.0) - _age(t)) for t in running)
        eta = (time.time() + remaining / self.n_workers) if self._expected and not self.spec.search else None
        self.progress.update(self.study_task, completed=counts.get("done", 0), eta=eta,
                             info=f"running {len(running)} · failed {counts.get('failed', 0)} · "
                                  f"interrupted {counts.get('interrupted', 0)} · left {left}")
        self._show_running(running)

    def _expect(self, pair: tuple[str, str]) -> float | None:
        if pair in self._expected:
            return self._expected[pair]
        same_backbone = [v for (b, _), v in self._expected.items() if b == pair[0]]
        return statistics.median(same_backbone) if same_backbone else None

    def _show_running(self, running: list[optuna.trial.FrozenTrial]) -> None:
        for number in [n for n in self._trials if n not in {t.number for t in running}]:
            self.progress.remove_task(self._trials.pop(number))
            self._epoch_info.pop(number, None)
        for t in sorted(running, key=lambda t: t.number):
            epoch = t.user_attrs.get("epoch")
            where = f"epoch {epoch or 0}/{self.spec.train.epochs}"
            worker = str(t.user_attrs.get("worker", "")).rsplit(":", 1)[-1]
            info = " · ".join(x for x in (t.user_attrs["cell"], where, self._epoch_info.get(t.number),
                                          f"pid {worker}" if worker else "") if x)
            fields = dict(info=info, started=_started(t), expected=self._expect(_pair(t)))
            if t.number in self._trials:
                self.progress.update(self._trials[t.number], **fields)
            else:
                self._trials[t.number] = self.progress.add_task(f"  #{t.number}", total=None, **fields)

    def on_event(self, kind: str, data: dict[str, Any]) -> None:
        if self.progress is None:
            return
        if kind == "epoch":
            top1 = f" · top-1 {data['top1']:.2f}" if "top1" in data else ""
            self._epoch_info[data["number"]] = (f"loss {data['train_loss']:.3f} · "
                                                f"{data['images_per_second']:.0f} img/s{top1}")
        if kind in ("start", "epoch", "end"):
            self.refresh(force=True)
        elif kind == "waiting":
            cells = data["cells"]
            self.progress.console.print(f"waiting for {len(cells)} cell(s) running elsewhere:", highlight=False)
            for line in cells:
                self.progress.console.print(f"  {line}", highlight=False, markup=False)


def _pair(trial: optuna.trial.FrozenTrial) -> tuple[str, str]:
    return str(trial.user_attrs.get("backbone", "")), str(trial.user_attrs.get("arm", ""))


def _started(trial: optuna.trial.FrozenTrial) -> float:
    """When the trial started, as a Unix time (Optuna stores local time without a zone)."""
    return trial.datetime_start.timestamp() if trial.datetime_start else time.time()


def _age(trial: optuna.trial.FrozenTrial) -> float:
    return max(0.0, time.time() - _started(trial))


def _expected_seconds(study: optuna.Study, spec: StudySpec, n_workers: int,
                      probe: bool = True) -> dict[tuple[str, str], float]:
    """Seconds per trial of each (backbone, arm): the finished trials' median, else (with ``probe``)
    the dry run's probe of one arm per backbone that has no finished trial (a few training steps)."""
    from .estimate import pair_seconds
    from .slots import Slot

    if spec.search is not None:
        return {}
    records = read_records(study)
    done = {(r.backbone, r.arm) for r in records if r.complete}
    unprobed = {}
    for cell in spec.cells() if probe else ():
        if cell.backbone not in {b for b, _ in done} and cell.backbone not in unprobed:
            unprobed[cell.backbone] = cell
    threads = max(1, cpu_count() // n_workers)
    seconds, _ = pair_seconds(spec, [c for c in spec.cells() if (c.backbone, c.arm.id) in done] +
                              list(unprobed.values()), records, [Slot("cpu", threads)] * n_workers)
    return seconds


class _TimeBar(BarColumn):
    """The study's bar (cells done), or a trial's: its time so far against its expected time."""

    def render(self, task):
        from rich.progress_bar import ProgressBar

        started, expected = task.fields.get("started"), task.fields.get("expected")
        if started is None:
            return super().render(task)
        elapsed = time.time() - started
        return ProgressBar(total=expected or None, completed=min(elapsed, expected or 0), width=self.bar_width,
                           pulse=not expected, animation_time=task.get_time(), style=self.style,
                           complete_style=self.complete_style, finished_style=self.complete_style,
                           pulse_style=self.pulse_style)


class _Status(ProgressColumn):
    """The study's cells done of all, its counts and ETA; a trial's time so far against its expected
    time, then its cell, epoch and worker. Computed at each render, so the clocks run between polls."""

    def render(self, task):
        from rich.text import Text

        started = task.fields.get("started")
        if started is not None:
            expected = task.fields.get("expected")
            clock = _clock(time.time() - started) + (f" of ~{_clock(expected)}" if expected else "")
            return Text(f"{clock} · {task.fields['info']}", no_wrap=True, overflow="ellipsis")
        eta = task.fields.get("eta")
        remaining = f" · ETA {_clock(max(0.0, eta - time.time()))}" if eta is not None and not task.finished else ""
        return Text(f"{int(task.completed)}/{int(task.total or 0)}{remaining} · {task.fields['info']}",
                    no_wrap=True, overflow="ellipsis")


def _clock(seconds: float) -> str:
    seconds = int(seconds)
    return f"{seconds // 3600}:{seconds // 60 % 60:02d}:{seconds % 60:02d}" if seconds >= 3600 else \
        f"{seconds // 60}:{seconds % 60:02d}"


def _existing_study(spec: StudySpec, url: str, name: str | None) -> optuna.Study | None:
    """The study if it is already stored (checked against ``spec`` as ``open_study`` checks it),
    else None; a dry run writes nothing: no file, table, attribute or lock file."""
    try:
        storage = open_storage(url, create=False)
    except NoStudyError:
        return None
    name = name or spec.name
    if name not in optuna.get_all_study_names(storage):
        return None
    study = load_stored(storage, name, url)
    attrs = read_locked(study, lambda: study.user_attrs)
    if read_spec(attrs) is None:
        raise EcasweepError(f"study {name!r} was not created by ecasweep (no spec stored)")
    # as open_study refuses it, unwritten; a study whose creation was interrupted is created again
    return study if check_recipe(attrs, spec, name, url) is not None else None


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
    from ..spec import alias_notes

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
