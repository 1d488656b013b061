"""Liveness: every claimed cell is finished, visibly running, or recoverable; a waiting worker says
what it waits for; SIGTERM stops a run like Ctrl-C; concurrent runs leave no duplicate trial.

The numbers these tests print (run with ``-s``) are the ones in docs/reliability.md.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections import Counter
from pathlib import Path

import optuna
import pytest
from optuna.trial import TrialState
from typer.testing import CliRunner

from ecasweep.store import liveness
from ecasweep.sweep import signals, worker as sweep
from ecasweep.sweep.cells import claim, ensure_cells
from ecasweep.sweep.study import open_study, stored_spec
from ecasweep.cli.app import app
from ecasweep.store.results import DUPLICATE_OF, read_records
from ecasweep.spec import load_study
from ecasweep.store.storage import open_storage

from conftest import write_study

runner = CliRunner()
TIMEOUT = 180


def _env(tmp_path: Path, **extra: str) -> dict[str, str]:
    env = dict(os.environ, ECASWEEP_CHECKPOINTS=str(tmp_path / "ckpt"), ECASWEEP_HEARTBEAT="1", **extra)
    if "ECASWEEP_FAULT" not in extra:
        env.pop("ECASWEEP_FAULT", None)
    return env


def _complete_once(storage: str, name: str, n_cells: int) -> list:
    study = optuna.load_study(study_name=name, storage=open_storage(storage, create=False))
    done = Counter(r.cell for r in read_records(study) if r.complete)
    assert len(done) == n_cells and set(done.values()) == {1}, done
    assert not study.get_trials(states=(TrialState.RUNNING, TrialState.WAITING))
    return study.trials


def _orphan_every_cell(study_file: Path, storage_url: str) -> None:
    """What a worker killed between its claim and its first heartbeat left behind with earlier
    versions: every cell's trial RUNNING, and no heartbeat at all."""
    spec = load_study(str(study_file))
    storage = open_storage(storage_url)
    study = open_study(spec, storage, url=storage_url)
    ensure_cells(study, spec, retry_failed=True)
    for trial in study.get_trials(states=(TrialState.WAITING,)):
        assert storage.set_trial_state_values(trial._trial_id, TrialState.RUNNING)
    assert len(liveness.running(study)) == len(spec.cells())
    assert all(t.beat_age is None for t in liveness.running(study))


# --- stale judgement ----------------------------------------------------------------------------

def _running(trial_id: int, beat_age: float | None, started_ago: float, mark: object) -> liveness.RunningTrial:
    return liveness.RunningTrial(trial_id, trial_id, f"cell-{trial_id}", "host:1", beat_age, started_ago, mark)


def test_stale_by_the_clocks_by_the_start_when_it_never_beat_and_by_a_heartbeat_that_stands_still():
    watch = liveness.StaleWatch(grace=0.3)
    assert [t.trial_id for t in watch.stale([_running(1, 5.0, 9.0, "a"),     # old heartbeat
                                             _running(2, None, 9.0, None),   # never beat, started long ago
                                             _running(3, 0.1, 9.0, "b"),     # fresh
                                             _running(4, None, 0.1, None),   # never beat, just started
                                             _running(5, -60.0, 0.0, "c")]   # a clock far ahead
                                            )] == [1, 2]
    time.sleep(0.4)
    # 3 beat meanwhile (its mark moved); 4 and 5 stood still for longer than the grace period
    assert [t.trial_id for t in watch.stale([_running(3, 0.1, 9.4, "b2"), _running(4, None, 0.2, None),
                                             _running(5, -60.0, 0.0, "c")])] == [4, 5]


@pytest.mark.parametrize("kind", ["sqlite", "journal"])
def test_a_trial_that_never_beat_is_picked_up_by_the_next_run_and_the_wait_is_reported(tmp_path, kind):
    """A database holding RUNNING trials with no heartbeat (written by earlier versions) completes on
    the next `run` with no manual step; while it waits, `run` says for which cells and why."""
    study_file = write_study(tmp_path, seeds=1, size=128, epochs=1, ks="[3]")  # 3 cells
    storage = f"sqlite:///{tmp_path / 'orphans.db'}" if kind == "sqlite" else f"journal:{tmp_path / 'orphans.log'}"
    _orphan_every_cell(study_file, storage)
    started = time.monotonic()
    result = runner.invoke(app, ["run", str(study_file), "--storage", storage, "--workers", "1", "--no-table"])
    took = time.monotonic() - started
    assert result.exit_code == 0, result.output
    assert "waiting for 3 cell(s) running elsewhere" in result.output
    assert "resnet-8/none/seed=0 on an unknown worker (no heartbeat yet" in result.output
    trials = _complete_once(storage, "faults", 3)
    assert Counter(t.state.name for t in trials) == Counter({"FAIL": 3, "COMPLETE": 3})
    print(f"\n{kind}: 3 never-beaten RUNNING trials failed as stale and their cells completed in {took:.1f} s "
          f"(grace {liveness.grace_seconds():.0f} s)")


def test_a_waiting_worker_keeps_saying_which_cell_where_and_how_old_its_heartbeat_is(tmp_path, monkeypatch):
    study_file = write_study(tmp_path, seeds=1, size=128, epochs=1, ks="[3]")
    storage_url = f"sqlite:///{tmp_path / 'w.db'}"
    spec = load_study(str(study_file))
    storage = open_storage(storage_url)
    study = open_study(spec, storage, url=storage_url)
    ensure_cells(study, spec, retry_failed=True)
    # A live worker elsewhere holds one cell and beats until the waiting worker has said three
    # times that it waits for it; then it dies.
    held = claim(study)
    held.set_user_attr("worker", "node7:4242")
    stop, said = threading.Event(), []
    real_report = sweep._WaitReport.__call__

    def counting_report(self, trials, grace):
        before = self.last
        real_report(self, trials, grace)
        if self.last != before:
            said.append(len(trials))

    monkeypatch.setattr(sweep._WaitReport, "__call__", counting_report)

    def beating() -> None:
        deadline = time.monotonic() + 120
        while len(said) < 3 and time.monotonic() < deadline and not stop.wait(0.3):
            liveness.beat(storage, held._trial_id)

    thread = threading.Thread(target=beating, daemon=True)
    thread.start()
    monkeypatch.setattr(sweep, "WAIT_REPORT_SECONDS", 1.0)
    try:
        result = runner.invoke(app, ["worker", "faults", "--storage", storage_url, "--device", "cpu"])
    finally:
        stop.set()
        thread.join()
    assert result.exit_code == 0, result.output
    held_cell = held.user_attrs["cell"]
    reports = [line for line in result.output.splitlines() if f"{held_cell} on node7:4242 (last heartbeat" in line]
    assert len(reports) >= 3, result.output  # said again while the wait lasted
    _complete_once(storage_url, "faults", 3)


# --- kill -9 right after the claim ---------------------------------------------------------------------

@pytest.mark.slow
def test_a_worker_killed_right_after_its_claim_leaves_a_cell_the_next_run_completes(tmp_path):
    study_file = write_study(tmp_path, seeds=1, size=128, epochs=1, ks="[3]")
    storage = f"sqlite:///{tmp_path / 'claimed.db'}"
    command = [sys.executable, "-m", "ecasweep", "run", str(study_file), "--storage", storage, "--workers", "1",
               "--no-table"]
    died = subprocess.run(command, env=_env(tmp_path, ECASWEEP_FAULT="claimed:2"), capture_output=True,
                          text=True, timeout=TIMEOUT)
    assert died.returncode == -signal.SIGKILL, died.stderr
    study = optuna.load_study(study_name="faults", storage=storage)
    (orphan,) = liveness.running(study)
    assert orphan.beat_age is not None  # the heartbeat came before the claim
    started = time.monotonic()
    again = subprocess.run(command, env=_env(tmp_path), capture_output=True, text=True, timeout=TIMEOUT)
    assert again.returncode == 0, again.stderr
    trials = _complete_once(storage, "faults", 3)
    assert [t.number for t in trials if t.state == TrialState.FAIL] == [orphan.number]
    print(f"\nkilled right after its claim: the rerun completed every cell once in "
          f"{time.monotonic() - started:.1f} s")


# --- signals, secrets, concurrent runs ---------------------------------------------------------------

def _children(pid: int) -> list[int]:
    kids = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[1]) == pid:
                kids.append(int(entry.name))
    return kids


def _wait_for(predicate, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.2)
    pytest.fail(f"timed out after {timeout:.0f} s waiting for {what}")


def _running_trials(storage: str, name: str) -> list:
    try:
        return optuna.load_study(study_name=name, storage=storage).get_trials(states=(TrialState.RUNNING,))
    except (KeyError, Exception):  # not created yet
        return []


@pytest.mark.slow
@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_sigterm_and_ctrl_c_stop_every_worker_mark_trials_interrupted_and_say_it_once(tmp_path, signum,
                                                                                      postgres_url, unique_name):
    """SIGTERM to `run` (what systemd, SLURM and `timeout` send) or Ctrl-C to its process group:
    both workers stop, their trials are marked interrupted, one message, exit 143 / 130; the next
    run completes the study. The storage's password is on no process's command line."""
    study_file = write_study(tmp_path, name=unique_name, seeds=1, size=1024, epochs=2, ks="[3]")  # 3 cells
    secret = "S3cretPW"
    storage = postgres_url.replace("postgres@", f"postgres:{secret}@", 1)
    assert secret in storage
    proc = subprocess.Popen([sys.executable, "-m", "ecasweep", "run", str(study_file), "--devices", "cpu,cpu",
                             "--no-table"], env=_env(tmp_path, ECASWEEP_STORAGE=storage),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)
    try:
        running = _wait_for(lambda: len(_running_trials(storage, unique_name)) == 2 and
                            _running_trials(storage, unique_name), 120, "two running trials")
        workers = _children(proc.pid)
        assert len(workers) == 2
        for pid in (proc.pid, *workers):
            assert secret not in Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace")
        if signum == signal.SIGTERM:
            proc.send_signal(signal.SIGTERM)
        else:
            os.killpg(proc.pid, signal.SIGINT)
        _, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.communicate()
    assert proc.returncode == 128 + signum, err
    assert "Traceback" not in err and err.count("interrupted:") == 1, err
    for pid in workers:  # no worker outlives run
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)
    study = optuna.load_study(study_name=unique_name, storage=postgres_url)
    reasons = {t.number: t.user_attrs.get("fail_reason") for t in study.trials if t.state == TrialState.FAIL}
    assert set(reasons.values()) == {"interrupted"}  # at least one, and nothing else
    states = {t.number: t.state for t in study.trials}
    assert all(number in reasons or states[number] == TrialState.COMPLETE for number in (t.number for t in running))
    assert not study.get_trials(states=(TrialState.RUNNING,))
    again = subprocess.run([sys.executable, "-m", "ecasweep", "run", str(study_file), "--workers", "1",
                            "--no-table"], env=_env(tmp_path, ECASWEEP_STORAGE=storage),
                           capture_output=True, text=True, timeout=TIMEOUT)
    assert again.returncode == 0, again.stderr
    _complete_once(postgres_url, unique_name, 3)
    optuna.delete_study(study_name=unique_name, storage=postgres_url)


@pytest.mark.slow
@pytest.mark.parametrize("delay", [0.5, 1.5, 3.0])
def test_ctrl_c_during_start_up_exits_130_without_a_traceback(tmp_path, delay):
    study_file = write_study(tmp_path, seeds=1, size=128, epochs=1, ks="[3]")
    entry = Path(sys.executable).with_name("ecasweep")
    command = [str(entry)] if entry.exists() else [sys.executable, "-m", "ecasweep"]
    proc = subprocess.Popen([*command, "run", str(study_file), "--storage", f"sqlite:///{tmp_path / 's.db'}",
                             "--devices", "cpu,cpu", "--no-table"], env=_env(tmp_path), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, start_new_session=True)
    time.sleep(delay)
    os.killpg(proc.pid, signal.SIGINT)
    try:
        out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    assert proc.returncode in (0, 130), err  # 0: it had already finished
    assert "Traceback" not in err and "KeyboardInterrupt" not in err, err
    assert err.count("interrupted:") <= 1, err


@pytest.mark.slow
def test_workers_stop_when_run_itself_is_killed(tmp_path):
    """SIGKILL to ``run`` alone (its workers not told): they notice, mark their trials interrupted
    and exit, instead of training on as orphans."""
    study_file = write_study(tmp_path, seeds=2, size=1024, epochs=30, ks="[3]")
    url = f"sqlite:///{tmp_path / 'orphan.db'}"
    proc = subprocess.Popen([sys.executable, "-m", "ecasweep", "run", str(study_file), "--storage", url,
                             "--devices", "cpu,cpu", "--no-table"], env=_env(tmp_path),
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + TIMEOUT
        running: list = []
        while len(running) < 2 and time.monotonic() < deadline and proc.poll() is None:
            time.sleep(0.5)
            try:
                study = optuna.load_study(study_name="faults", storage=url)
            except KeyError:
                continue
            running = [t for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,))
                       if "worker" in t.user_attrs]
        assert len(running) == 2, "two workers never claimed a trial"
        workers = {int(t.user_attrs["worker"].rsplit(":", 1)[1]) for t in running}
        assert proc.pid not in workers
        proc.kill()
        proc.wait()
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and any(_alive(pid) for pid in workers):
            time.sleep(0.5)
        assert not [pid for pid in workers if _alive(pid)], "workers outlived run"
    finally:
        if proc.poll() is None:
            proc.kill()
    trials = optuna.load_study(study_name="faults", storage=url).trials
    stopped = [t for t in trials if t.number in {r.number for r in running}]
    assert [t.user_attrs.get("fail_reason") for t in stopped] == ["interrupted"] * 2


def _alive(pid: int) -> bool:
    """Whether ``pid`` runs and is not a zombie."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


FINALISER_SCRIPT = """
import os, signal, sys, time
from ecasweep.sweep import signals
signals.install()
class Finaliser:
    def __del__(self):
        os.kill(os.getpid(), signal.SIG{name})
        for _ in range(1000):  # the handler runs here, where its exception cannot propagate
            pass
try:
    Finaliser()
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        time.sleep(0.01)
    print("not stopped")
except KeyboardInterrupt as e:
    sys.exit(signals.exit_code(e))
"""


@pytest.mark.parametrize(("name", "code"), [("INT", 130), ("TERM", 143)])
def test_a_signal_arriving_inside_a_finaliser_still_stops_the_program_quietly(name, code):
    """Import-time weakref callbacks and finalisers swallow exceptions; a Ctrl-C landing in one used
    to be printed as "Exception ignored" and lost."""
    proc = subprocess.run([sys.executable, "-c", FINALISER_SCRIPT.replace("{name}", name)],
                          capture_output=True, text=True, timeout=60)
    assert (proc.returncode, proc.stdout) == (code, ""), proc.stderr
    assert "Traceback" not in proc.stderr and "ignored" not in proc.stderr, proc.stderr


# The parent's storage read is where the signal lands, and the database driver, cleaning up the query
# it cut short, raises an error of its own in the interruption's place (what psycopg and Optuna did in
# CI: "can't change 'autocommit' now", reported as a StorageInternalError).
REPLACED_SCRIPT = """
import signal, sys
import optuna
from optuna.trial import TrialState
from ecasweep.sweep import runner

real_refresh = runner.StudyProgress.refresh

def refresh(self, force=False):
    real_refresh(self, force)
    if not force and len(self.study.get_trials(deepcopy=False, states=(TrialState.RUNNING,))) == 2:
        try:
            signal.raise_signal(signal.SIG{name})
        finally:
            raise optuna.exceptions.StorageInternalError("An exception is raised during the commit.")

runner.StudyProgress.refresh = refresh
sys.argv = ["ecasweep", *sys.argv[1:]]
from ecasweep.__main__ import main
main()
"""


@pytest.mark.slow
@pytest.mark.parametrize(("name", "code"), [("TERM", 143), ("INT", 130)])
def test_a_stop_that_a_library_turns_into_its_own_error_still_stops_every_worker_and_says_it_once(tmp_path, name,
                                                                                                    code):
    study_file = write_study(tmp_path, seeds=1, size=1024, epochs=2, ks="[3]")  # 3 cells
    storage = f"sqlite:///{tmp_path / 'replaced.db'}"
    proc = subprocess.Popen([sys.executable, "-c", REPLACED_SCRIPT.replace("{name}", name), "run", str(study_file),
                             "--storage", storage, "--devices", "cpu,cpu"], env=_env(tmp_path),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)
    try:
        _, err = proc.communicate(timeout=TIMEOUT)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.communicate()
    assert proc.returncode == code, err  # before: the library's error, exit 2, workers left to train on
    assert "Traceback" not in err and err.count("interrupted:") == 1, err
    study = optuna.load_study(study_name="faults", storage=storage)
    assert not study.get_trials(states=(TrialState.RUNNING,))  # every worker stopped and said so
    reasons = [t.user_attrs.get("fail_reason") for t in study.trials if t.state == TrialState.FAIL]
    assert reasons and set(reasons) == {"interrupted"}, reasons


def test_an_error_a_stop_caused_inside_a_trial_marks_it_interrupted_not_failed(tmp_path, monkeypatch):
    """A worker's epoch write cut short by the signal: the driver's error is the stop, not a failed
    cell the worker would record and then go on from, deaf to further signals."""
    def stopped_mid_write(config, on_epoch=None):
        monkeypatch.setattr(signals, "_stopping", signal.SIGTERM)  # the handler ran; its exception was replaced
        raise optuna.exceptions.StorageInternalError("An exception is raised during the commit.")

    monkeypatch.setattr(sweep, "run_trial", stopped_mid_write)
    study_file = write_study(tmp_path, seeds=1, size=128, epochs=1, ks="[3]")
    storage = f"sqlite:///{tmp_path / 'x.db'}"
    result = CliRunner().invoke(app, ["run", str(study_file), "--storage", storage, "--workers", "1",
                                      "--no-table"])
    assert result.exit_code == 143, result.output
    assert result.output.count("interrupted:") == 1, result.output
    trials = optuna.load_study(study_name="faults", storage=storage).trials
    assert [(t.state, t.user_attrs.get("fail_reason")) for t in trials if t.state != TrialState.WAITING] == \
        [(TrialState.FAIL, "interrupted")]  # the first cell, and no other was started


@pytest.mark.slow
def test_three_concurrent_runs_on_postgresql_leave_no_duplicate_trial(tmp_path, postgres_url, unique_name):
    study_file = write_study(tmp_path, name=unique_name, seeds=3, size=128, epochs=1, ks="[3, 5]")  # 12 cells
    procs = [subprocess.Popen([sys.executable, "-m", "ecasweep", "run", str(study_file), "--workers", "1",
                               "--no-table"], env=_env(tmp_path, ECASWEEP_STORAGE=postgres_url),
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True) for _ in range(3)]
    try:
        errors = [p.communicate(timeout=TIMEOUT)[1] for p in procs]
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
    assert [p.returncode for p in procs] == [0, 0, 0], errors
    trials = _complete_once(postgres_url, unique_name, 12)
    assert len(trials) == 12 and not [t for t in trials if DUPLICATE_OF in t.user_attrs]
    optuna.delete_study(study_name=unique_name, storage=postgres_url)


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_processes_opening_a_new_study_at_once_never_read_half_a_spec(tmp_path, backend, request, monkeypatch):
    """The spec is several attributes written one by one; a slow writer widens the window in which
    another process used to read half of it (``KeyError: 'backbones'``)."""
    if backend == "postgresql":
        url, name = request.getfixturevalue("postgres_url"), request.getfixturevalue("unique_name")
    else:
        url, name = f"sqlite:///{tmp_path / 'spec.db'}", "spec-race"
    spec = load_study(str(write_study(tmp_path, name=name, seeds=2, size=128, epochs=1, ks="[3, 5, 7]")))
    set_attr = optuna.Study.set_user_attr

    def slow_set_attr(study, key, value):
        time.sleep(0.05)
        set_attr(study, key, value)

    monkeypatch.setattr(optuna.Study, "set_user_attr", slow_set_attr)
    results: list[object] = []

    def open_and_read():
        try:
            study = open_study(spec, open_storage(url), url=url)
            results.append(stored_spec(study))
        except Exception as e:  # noqa: BLE001 - the assertion below shows it
            results.append(e)

    threads = [threading.Thread(target=open_and_read) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=TIMEOUT)
    try:
        assert results == [spec] * 4
    finally:
        if backend == "postgresql":
            optuna.delete_study(study_name=name, storage=url)


def test_the_worker_attribute_names_this_host_and_process(tmp_path):
    study_file = write_study(tmp_path, seeds=1, size=128, epochs=1, ks="[3]")
    storage = f"sqlite:///{tmp_path / 'x.db'}"
    result = runner.invoke(app, ["run", str(study_file), "--storage", storage, "--workers", "1", "--no-table"])
    assert result.exit_code == 0, result.output
    study = optuna.load_study(study_name="faults", storage=storage)
    assert {t.user_attrs["worker"] for t in study.trials} == {f"{socket.gethostname()}:{os.getpid()}"}
