"""Faults and load: kill -9 at random moments and at chosen ones, torn checkpoints, trials that raise,
a full disk, four workers on one SQLite file and on PostgreSQL, readers during a run.

The numbers these tests print (run with ``-s``) are the ones in docs/reliability.md.
"""

from __future__ import annotations

import errno
import logging
import os
import random
import signal
import sqlite3
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import optuna
import pytest
import torch
from typer.testing import CliRunner

from ecasweep.sweep import worker as sweep
from ecasweep.engine.checkpoint import CheckpointStore
from ecasweep.cli.app import app
from ecasweep.store.results import read_records

from conftest import write_study

runner = CliRunner()

def env_for(ckpt: Path, **extra: str) -> dict[str, str]:
    env = dict(os.environ, ECASWEEP_CHECKPOINTS=str(ckpt), ECASWEEP_HEARTBEAT="1", **extra)
    env.pop("ECASWEEP_FAULT", None)
    env.update(extra)
    return env


def run_cli(study_file: Path, storage: str, ckpt: Path, *more: str, timeout: float = 300, **env: str):
    return subprocess.run([sys.executable, "-m", "ecasweep", "run", str(study_file), "--storage", storage,
                           "--workers", "1", "--no-table", *more], env=env_for(ckpt, **env),
                          capture_output=True, text=True, timeout=timeout)


def completed(storage: str, name: str) -> dict[str, list]:
    study = optuna.load_study(study_name=name, storage=storage)
    done: dict[str, list] = {}
    for r in read_records(study):
        if r.complete:
            done.setdefault(r.cell, []).append(r)
    return done


def metrics(storage: str, name: str) -> dict[str, tuple]:
    return {cell: (rs[0].metrics["top1"], rs[0].metrics["top5"], rs[0].metrics["loss"])
            for cell, rs in completed(storage, name).items()}


# --- kill -9 -------------------------------------------------------------------------------------------

def _wait_for_claim(db: Path, proc: subprocess.Popen, timeout: float) -> None:
    """Until ``proc`` has claimed a trial (a trial of the study names it as its worker), or exited."""
    import sqlite3

    deadline = time.monotonic() + timeout
    while proc.poll() is None and time.monotonic() < deadline:
        try:
            with sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5) as conn:
                row = conn.execute("SELECT count(*) FROM trial_user_attributes WHERE key = 'worker' "
                                   "AND value_json LIKE ?", (f'%:{proc.pid}"',)).fetchone()
            if row and row[0]:
                return
        except sqlite3.Error:  # no database or no tables yet
            pass
        time.sleep(0.05)


@pytest.mark.slow
@pytest.mark.timeout(1500)
def test_kill_9_at_random_moments_loses_nothing_and_changes_nothing(tmp_path):
    """At least 20 SIGKILLs (random delays after the worker's first claim, and right after a claim,
    mid checkpoint write and mid result write); after them every cell has exactly one COMPLETE
    trial with the metrics of an uninterrupted run."""
    study_file = write_study(tmp_path)
    reference_db = f"sqlite:///{tmp_path / 'reference.db'}"
    ref = run_cli(study_file, reference_db, tmp_path / "ref-ckpt")
    assert ref.returncode == 0, ref.stdout + ref.stderr
    expected = metrics(reference_db, "faults")
    assert len(expected) == 8

    rng = random.Random(6)
    kills, interrupted, rounds, started = 0, 0, 0, time.monotonic()
    how = Counter()
    while kills < 20:
        rounds += 1
        db = tmp_path / f"killed-{rounds}.db"
        storage, ckpt = f"sqlite:///{db}", tmp_path / f"ckpt-{rounds}"
        for attempt in range(40):
            fault = rng.choice(["delay", "delay", "delay", "checkpoint-write", "store-result", "claimed"])
            extra = {} if fault == "delay" else {"ECASWEEP_FAULT": f"{fault}:{rng.randint(1, 4)}"}
            proc = subprocess.Popen([sys.executable, "-m", "ecasweep", "run", str(study_file), "--storage", storage,
                                     "--workers", "1", "--no-table"], env=env_for(ckpt, **extra),
                                    stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                                    start_new_session=True)
            try:
                if fault == "delay":
                    # Timed from the worker's progress (its first claim), not from the process's start,
                    # so that the kills land among claims, trials and writes on a slow CPU as on a fast one.
                    _wait_for_claim(db, proc, timeout=120)
                    _, err = proc.communicate(timeout=rng.uniform(0.0, 2.5))
                else:
                    _, err = proc.communicate(timeout=120)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                _, err = proc.communicate()
            if proc.returncode == 0:
                break
            assert proc.returncode == -signal.SIGKILL, err  # killed by us or by the fault hook, nothing else
            kills += 1
            how[fault] += 1
        else:
            pytest.fail("the study did not complete in 40 attempts")
        study = optuna.load_study(study_name="faults", storage=storage)
        interrupted += sum(1 for t in study.trials if t.state.name == "FAIL")
        done = completed(storage, "faults")
        assert sorted(done) == sorted(expected) and all(len(rs) == 1 for rs in done.values())
        assert metrics(storage, "faults") == expected
        assert not list(ckpt.rglob("*.pt")) and not list(ckpt.rglob("*.tmp"))  # cleared once stored
    print(f"\nkill -9 loop: {kills} kills ({dict(how)}) over {rounds} round(s) of 8 cells; {interrupted} trials "
          f"interrupted and resumed; {time.monotonic() - started:.0f} s; metrics equal to the uninterrupted run")


HALF_WRITTEN = """
import os, sqlite3, sys
conn = sqlite3.connect(sys.argv[1], isolation_level=None)
conn.execute("PRAGMA cache_size=1")  # spill pages into the file before the commit, as a long write does
conn.execute("CREATE TABLE filler (x BLOB)")
conn.execute("BEGIN")
for _ in range(200):
    conn.execute("INSERT INTO filler VALUES (randomblob(4000))")
os._exit(0)  # dies mid-transaction, as under kill -9: its rollback journal stays behind, hot
"""


def test_a_writer_killed_mid_transaction_leaves_a_database_the_next_run_and_readers_open(tmp_path):
    """A process killed inside a SQLite write transaction leaves a hot journal. The next open (a run
    resuming, or ``status``) rolls it back and goes on, rather than refusing the file as unusable
    (a read-only check cannot roll a journal back); what was committed before is all there."""
    from ecasweep.store.storage import open_storage

    db = tmp_path / "killed.db"
    url = f"sqlite:///{db}"
    optuna.create_study(study_name="kept", storage=open_storage(url, create=True))
    subprocess.run([sys.executable, "-c", HALF_WRITTEN, str(db)], check=True, timeout=60)
    assert (tmp_path / "killed.db-journal").exists()
    open_storage(url, create=False)  # a reader first: status or table during the outage
    assert not (tmp_path / "killed.db-journal").exists()
    storage = open_storage(url, create=True)
    assert optuna.get_all_study_names(storage=storage) == ["kept"]
    with sqlite3.connect(db) as conn:
        assert conn.execute("SELECT COUNT(*) FROM filler").fetchone() == (0,)  # the half write is undone


@pytest.mark.slow
def test_a_torn_checkpoint_is_skipped_and_the_trial_resumes_from_the_one_before(tmp_path):
    study_file = write_study(tmp_path, seeds=1, ks="[3]", size=256)
    reference_db = f"sqlite:///{tmp_path / 'reference.db'}"
    assert run_cli(study_file, reference_db, tmp_path / "ref").returncode == 0
    storage, ckpt = f"sqlite:///{tmp_path / 'torn.db'}", tmp_path / "ckpt"
    died = run_cli(study_file, storage, ckpt, ECASWEEP_FAULT="checkpoint-write:3")  # dies in epoch 3's write
    assert died.returncode == -signal.SIGKILL
    (identity,) = list((ckpt / "faults").iterdir())  # <root>/<study>/<trial identity>
    assert sorted(p.name for p in identity.glob("epoch-*.pt")) == ["epoch-1.pt", "epoch-2.pt"]
    assert list(identity.glob(".epoch-*.tmp"))  # the half-written temporary file, never renamed
    newest = identity / "epoch-2.pt"
    newest.write_bytes(newest.read_bytes()[: newest.stat().st_size // 3])  # and a torn final file

    again = run_cli(study_file, storage, ckpt)
    assert again.returncode == 0, again.stdout + again.stderr
    assert "Traceback" not in again.stderr
    resumed = [r for rs in completed(storage, "faults").values() for r in rs if r.metrics["resumed_from_epoch"]]
    assert [r.metrics["resumed_from_epoch"] for r in resumed] == [1]
    assert metrics(storage, "faults") == metrics(reference_db, "faults")


# --- trials that raise, a full disk -----------------------------------------------------------------------

def test_a_trial_that_raises_is_failed_with_its_reason_and_the_sweep_goes_on(tmp_path, monkeypatch):
    real = sweep.run_trial

    def out_of_memory_for_se(config, on_epoch=None):
        if config.model.attention == "se":
            raise RuntimeError("CUDA out of memory. Tried to allocate 2.00 GiB")
        return real(config, on_epoch=on_epoch)

    monkeypatch.setattr(sweep, "run_trial", out_of_memory_for_se)
    study_file = write_study(tmp_path, seeds=1, size=128, epochs=1)
    storage = f"sqlite:///{tmp_path / 'x.db'}"
    result = runner.invoke(app, ["run", str(study_file), "--storage", storage, "--workers", "1", "--no-table"])
    assert result.exit_code == 1, result.output
    assert "1 cell(s) failed" in result.output
    records = read_records(optuna.load_study(study_name="faults", storage=storage))
    assert Counter(r.state for r in records) == Counter({"COMPLETE": 3, "FAIL": 1})
    (failed,) = [r for r in records if r.state == "FAIL"]
    assert failed.arm == "se(r=4)" and failed.fail_reason.startswith("RuntimeError: CUDA out of memory")
    status = runner.invoke(app, ["status", "faults", "--storage", storage])
    assert status.exit_code == 0 and "failed: 1" in status.output and "RuntimeError" in status.output
    as_json = runner.invoke(app, ["status", "faults", "--storage", storage, "--json"])
    assert "RuntimeError: CUDA out of memory. Tried to allocate 2.00 GiB" in as_json.output


def test_a_nan_loss_fails_every_cell_with_its_reason(tmp_path):
    study_file = write_study(tmp_path, seeds=1, size=512, epochs=1, ks="[3]")
    storage = f"sqlite:///{tmp_path / 'x.db'}"
    result = runner.invoke(app, ["run", str(study_file), "--storage", storage, "--workers", "1", "--no-table",
                                 "--set", "train.lr=1e6", "--set", "train.schedule=constant"])
    assert result.exit_code == 1, result.output
    records = read_records(optuna.load_study(study_name="faults", storage=storage))
    assert len(records) == 3 and all(r.state == "FAIL" for r in records)
    assert all(r.fail_reason.startswith("NonFiniteLossError: non-finite loss") for r in records)
    status = runner.invoke(app, ["status", "faults", "--storage", storage, "--json"])
    assert status.exit_code == 0 and '"failed": 3' in status.output and "non-finite loss" in status.output


def test_a_full_disk_keeps_the_previous_checkpoint_and_the_trial_goes_on(tmp_path, monkeypatch, caplog):
    store = CheckpointStore(tmp_path, "0123abcd")
    assert store.save(1, {"w": torch.ones(3)}) is not None
    real_save = torch.save

    def disk_full(obj, f, *args, **kwargs):
        real_save(obj, f, *args, **kwargs)
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(torch, "save", disk_full)
    with caplog.at_level(logging.WARNING, logger="ecasweep.engine.checkpoint"):
        assert store.save(2, {"w": torch.zeros(3)}) is None
    assert "could not write checkpoint" in caplog.text and "No space left on device" in caplog.text
    assert "the checkpoint of epoch 1 is kept" in caplog.text
    assert store.epochs() == [1] and not list(store.directory.glob(".epoch-*"))
    epoch, state = store.load_latest()
    assert epoch == 1 and torch.equal(state["w"], torch.ones(3))

    # Through the CLI: every checkpoint write fails, the sweep still completes every cell.
    study_file = write_study(tmp_path, seeds=1, size=128, epochs=2, ks="[3]")
    storage = f"sqlite:///{tmp_path / 'x.db'}"
    result = runner.invoke(app, ["run", str(study_file), "--storage", storage, "--workers", "1", "--no-table"])
    assert result.exit_code == 0, result.output
    assert sorted(len(rs) for rs in completed(storage, "faults").values()) == [1, 1, 1]


# --- concurrency and load ------------------------------------------------------------------------------

def _four_workers(tmp_path: Path, storage: str, name: str) -> None:
    study_file = write_study(tmp_path, name=name, seeds=10, size=128, epochs=1, ks="[3, 5]")  # 40 cells
    started = time.monotonic()
    result = subprocess.run([sys.executable, "-m", "ecasweep", "run", str(study_file), "--storage", storage,
                             "--devices", "cpu,cpu,cpu,cpu", "--no-table"], env=env_for(tmp_path / "ckpt"),
                            capture_output=True, text=True, timeout=600)
    wall = time.monotonic() - started
    out = result.stdout + result.stderr
    assert result.returncode == 0, out
    assert "locked" not in out and "Traceback" not in out
    study = optuna.load_study(study_name=name, storage=storage)
    done = completed(storage, name)
    assert len(done) == 40 and all(len(rs) == 1 for rs in done.values())
    assert not [t for t in study.trials if t.state.name == "FAIL" and "duplicate_of" not in t.user_attrs]
    trials = [t for t in study.trials if t.state.name == "COMPLETE"]
    in_trial = sum((t.datetime_complete - t.datetime_start).total_seconds() for t in trials)
    training = sum(t.user_attrs["wall_seconds"] for t in trials)
    print(f"\n4 workers, {storage.split(':')[0]}: 40 cells in {wall:.1f} s wall; storage writes inside trials "
          f"{in_trial - training:.1f} s of {in_trial:.1f} s ({100 * (in_trial - training) / in_trial:.0f}%); "
          f"training {100 * training / (4 * wall):.0f}% of 4 x wall (the rest: start-up, claiming, idle)")


@pytest.mark.slow
def test_four_workers_on_one_sqlite_file_run_every_cell_once(tmp_path):
    _four_workers(tmp_path, f"sqlite:///{tmp_path / 'sweep.db'}", "four")


@pytest.mark.slow
def test_four_workers_on_postgresql_run_every_cell_once(tmp_path, postgres_url, unique_name):
    try:
        _four_workers(tmp_path, postgres_url, unique_name)
    finally:
        optuna.delete_study(study_name=unique_name, storage=postgres_url)


@pytest.mark.slow
def test_status_and_table_read_a_study_while_workers_write_it(tmp_path):
    study_file = write_study(tmp_path, name="busy", seeds=3, size=256, epochs=2, ks="[3, 5]")  # 12 cells
    storage = f"sqlite:///{tmp_path / 'sweep.db'}"
    env = env_for(tmp_path / "ckpt")
    proc = subprocess.Popen([sys.executable, "-m", "ecasweep", "run", str(study_file), "--storage", storage,
                             "--devices", "cpu,cpu", "--no-table"], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    reads = 0
    while proc.poll() is None:
        for command in (["status", "busy", "--json"], ["table", "busy", "--format", "csv"]):
            result = runner.invoke(app, [*command, "--storage", storage])
            if any(s in result.output for s in ("no study named", "no database", "no study in")):
                continue  # the run has not created it yet
            assert result.exit_code == 0, result.output
            reads += 1
        time.sleep(0.2)
    out = proc.stdout.read()
    assert proc.returncode == 0, out
    assert reads >= 10
    done = completed(storage, "busy")
    assert len(done) == 12 and all(len(rs) == 1 for rs in done.values())
    print(f"\n{reads} status/table reads during a 2-worker run: all exit 0")
