"""Sweeps end to end: the CLI, resume, kill -9, Ctrl-C, several workers, SQLite and PostgreSQL."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import optuna
import pytest
from typer.testing import CliRunner

from ecasweep.cli.app import app
from ecasweep.store.results import read_records

from conftest import write_study

ARMS = {"none", "se(r=4)", "eca(k=3)"}

runner = CliRunner()


@pytest.fixture
def study_file(tmp_path) -> Path:
    return write_study(tmp_path, name="tiny", seeds=2, size=256, epochs=1, ks="[3]")


def _env(tmp_path: Path, storage: str) -> dict[str, str]:
    env = dict(os.environ, ECASWEEP_STORAGE=storage, ECASWEEP_CHECKPOINTS=str(tmp_path / "ckpt"),
               ECASWEEP_HEARTBEAT="1")
    env.pop("COLUMNS", None)
    return env


def _complete_per_cell(storage: str, name: str) -> Counter:
    study = optuna.load_study(study_name=name, storage=storage)
    return Counter(r.cell for r in read_records(study) if r.complete)


def test_cli_runs_a_grid_and_a_second_run_runs_nothing_new(study_file, tmp_path):
    storage = f"sqlite:///{tmp_path / 'sweep.db'}"
    first = runner.invoke(app, ["run", str(study_file), "--storage", storage])
    assert first.exit_code == 0, first.output
    assert "Vanilla" in first.output and "ECA (k=3)" in first.output  # the table is printed
    done = _complete_per_cell(storage, "tiny")
    assert len(done) == 6 and set(done.values()) == {1}
    trials_before = len(optuna.load_study(study_name="tiny", storage=storage).trials)

    second = runner.invoke(app, ["run", str(study_file), "--storage", storage])
    assert second.exit_code == 0, second.output
    assert len(optuna.load_study(study_name="tiny", storage=storage).trials) == trials_before

    records = read_records(optuna.load_study(study_name="tiny", storage=storage))
    assert {r.arm for r in records} == ARMS
    assert all(r.value == r.metrics["top1"] for r in records)
    assert all({"top5", "loss", "total_params", "flops", "wall_seconds", "versions", "device"} <= set(r.metrics)
               for r in records)


def test_more_seeds_extend_the_study_and_another_recipe_is_refused(study_file, tmp_path):
    storage = f"sqlite:///{tmp_path / 'sweep.db'}"
    assert runner.invoke(app, ["run", str(study_file), "--storage", storage, "--set", "seeds=1"]).exit_code == 0
    assert len(_complete_per_cell(storage, "tiny")) == 3
    assert runner.invoke(app, ["run", str(study_file), "--storage", storage]).exit_code == 0
    assert len(_complete_per_cell(storage, "tiny")) == 6

    refused = runner.invoke(app, ["run", str(study_file), "--storage", storage, "--set", "train.lr=0.2"])
    assert refused.exit_code == 2
    assert "train.lr" in refused.output and "--name" in refused.output
    renamed = runner.invoke(app, ["run", str(study_file), "--storage", storage, "--set", "train.lr=0.2",
                                  "--set", "seeds=1", "--name", "tiny-lr02"])
    assert renamed.exit_code == 0, renamed.output


def test_dry_run_status_and_table(study_file, tmp_path):
    storage = f"sqlite:///{tmp_path / 'sweep.db'}"
    dry = runner.invoke(app, ["run", str(study_file), "--storage", storage, "--dry-run"])
    assert dry.exit_code == 0, dry.output
    assert "6 cells to run" in dry.output and "about" in dry.output
    assert not (tmp_path / "sweep.db").exists()  # a dry run writes nothing

    assert runner.invoke(app, ["run", str(study_file), "--storage", storage, "--set", "seeds=1"]).exit_code == 0
    status = runner.invoke(app, ["status", "tiny", "--storage", storage, "--json"])
    assert status.exit_code == 0, status.output
    assert '"done": 3' in status.output
    table = runner.invoke(app, ["table", "tiny", "--storage", storage, "--format", "csv"])
    assert table.exit_code == 0 and table.output.splitlines()[0].startswith("label")
    missing = runner.invoke(app, ["table", "nope", "--storage", storage])
    assert missing.exit_code == 2 and "no study named 'nope'" in missing.output and "tiny" in missing.output


def _start(args: list[str], env: dict[str, str]) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "ecasweep", *args], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, start_new_session=True)


def _wait_for_checkpoint(root: Path, proc: subprocess.Popen, timeout: float = 240) -> None:
    deadline = time.monotonic() + timeout
    while not list(root.rglob("epoch-*.pt")):
        assert proc.poll() is None, proc.stdout.read()
        assert time.monotonic() < deadline, "no checkpoint appeared"
        time.sleep(0.05)


@pytest.mark.slow
def test_kill_9_mid_trial_then_resume_completes_every_cell_once(tmp_path):
    study_file = write_study(tmp_path, name="tiny", seeds=2, size=256, epochs=3, ks="[3]")
    storage = f"sqlite:///{tmp_path / 'sweep.db'}"
    env = _env(tmp_path, storage)
    proc = _start(["run", str(study_file), "--no-table"], env)
    _wait_for_checkpoint(tmp_path / "ckpt", proc)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()

    again = subprocess.run([sys.executable, "-m", "ecasweep", "run", str(study_file)], env=env,
                           capture_output=True, text=True, timeout=600)
    assert again.returncode == 0, again.stdout + again.stderr
    done = _complete_per_cell(storage, "tiny")
    assert len(done) == 6 and set(done.values()) == {1}
    records = read_records(optuna.load_study(study_name="tiny", storage=storage))
    assert any(r.complete and r.metrics["resumed_from_epoch"] >= 1 for r in records)  # from its checkpoint
    assert any(r.state == "FAIL" for r in records)  # the killed trial, failed as stale


@pytest.mark.slow
def test_ctrl_c_marks_the_trial_interrupted_exits_130_and_resumes(tmp_path):
    study_file = write_study(tmp_path, name="tiny", seeds=2, size=256, epochs=3, ks="[3]")
    storage = f"sqlite:///{tmp_path / 'sweep.db'}"
    env = _env(tmp_path, storage)
    proc = _start(["run", str(study_file), "--no-table"], env)
    _wait_for_checkpoint(tmp_path / "ckpt", proc)
    proc.send_signal(signal.SIGINT)
    out, _ = proc.communicate(timeout=120)
    assert proc.returncode == 130, out
    assert "Traceback" not in out
    records = read_records(optuna.load_study(study_name="tiny", storage=storage))
    reasons = [r.fail_reason for r in records if r.state == "FAIL"]
    assert reasons and set(reasons) == {"interrupted"}  # one per worker that was running a trial

    again = subprocess.run([sys.executable, "-m", "ecasweep", "run", str(study_file)], env=env,
                           capture_output=True, text=True, timeout=600)
    assert again.returncode == 0, again.stdout + again.stderr
    assert set(_complete_per_cell(storage, "tiny").values()) == {1}


def _two_workers(tmp_path: Path, storage: str, name: str) -> None:
    study_file = write_study(tmp_path, name="tiny", seeds=2, size=256, epochs=1, ks="[3]")
    env = _env(tmp_path, storage)
    result = subprocess.run([sys.executable, "-m", "ecasweep", "run", str(study_file), "--name", name,
                             "--devices", "cpu,cpu", "--set", "seeds=4", "--no-table"],
                            env=env, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "locked" not in result.stdout + result.stderr
    study = optuna.load_study(study_name=name, storage=storage)
    done = Counter(r.cell for r in read_records(study) if r.complete)
    assert len(done) == 12 and set(done.values()) == {1}
    assert not [t for t in study.trials if t.state.name == "FAIL" and "duplicate_of" not in t.user_attrs]
    assert len({t.user_attrs["worker"] for t in study.trials if "worker" in t.user_attrs}) <= 3


@pytest.mark.slow
def test_two_workers_on_one_sqlite_file_run_every_cell_once(tmp_path):
    _two_workers(tmp_path, f"sqlite:///{tmp_path / 'sweep.db'}", "tiny")


@pytest.mark.slow
def test_two_workers_on_postgresql_run_every_cell_once(tmp_path, postgres_url, unique_name):
    _two_workers(tmp_path, postgres_url, unique_name)
    optuna.delete_study(study_name=unique_name, storage=postgres_url)


def test_the_dry_run_estimate_does_not_shrink_past_the_cores(monkeypatch):
    """More CPU workers than cores share the cores: 64 workers on 2 cores are no faster than 2."""
    from ecasweep.sweep import estimate
    from ecasweep.store.results import TrialRecord
    from ecasweep.spec import load_study
    from ecasweep.sweep.slots import Slot

    monkeypatch.setattr(estimate, "cpu_count", lambda: 2)
    spec = load_study("kernel-size")
    cells = spec.cells()
    records = [TrialRecord(i, "COMPLETE", c.key, c.arm.id, c.backbone, c.seed, {}, 85.0, {"wall_seconds": 60.0})
               for i, c in enumerate(cells)]
    two, _ = estimate.estimate_seconds(spec, cells, records, [Slot("cpu", 1)] * 2)
    many, _ = estimate.estimate_seconds(spec, cells, records, [Slot("cpu", 1)] * 64)
    one, _ = estimate.estimate_seconds(spec, cells, records, [Slot("cpu", 2)])
    assert two == many == len(cells) * 60.0 / 2 and one == len(cells) * 60.0
    gpus, _ = estimate.estimate_seconds(spec, cells, records, [Slot("cuda:0", 1), Slot("cuda:1", 1), Slot("cpu", 2)])
    assert gpus == len(cells) * 60.0 / 3
