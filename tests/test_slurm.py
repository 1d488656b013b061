"""Worker jobs on SLURM (ecasweep.launch): a real one-node cluster (scripts/slurm-local.sh) and the CI's
PostgreSQL, tiny synthetic studies. Without SLURM the cluster tests skip with the reason (CI sets
ECASWEEP_REQUIRE_SLURM=1, which makes them fail instead); the checks of options and storages run
everywhere.
"""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import optuna
import pytest
from typer.testing import CliRunner

from ecasweep.cli.app import app
from ecasweep.engine.config import RuntimeConfig
from ecasweep.launch.jobs import JOBS_ATTR, _parse_sacct, _parse_scontrol
from ecasweep.sweep.identity import job_attrs
from ecasweep.launch.shared import LOCAL_RUN_ENV, check_worker_storage
from ecasweep.launch.slurm import SlurmOptions
from ecasweep.errors import SpecError, StorageError
from ecasweep.store.results import read_records
from ecasweep.spec import load_study
from ecasweep.store.storage import PASSWORD_ENV, open_storage, with_password
from ecasweep.sweep.cells import ensure_cells
from ecasweep.sweep.study import open_study
from ecasweep.sweep.worker import work

from conftest import write_study

runner = CliRunner()
EPOCHS = 4
WAIT_S = 300  # the longest any test waits for its jobs (a 3x slower CI machine included)


def _study(tmp_path: Path) -> Path:
    """3 cells (none, se(r=4), eca(k=3)) of 4 epochs of about half a second each on one free core."""
    return write_study(tmp_path, name="slurm", seeds=1, size=1024, epochs=EPOCHS, ks="[3]")


@pytest.fixture(scope="module")
def reference(tmp_path_factory) -> dict[str, tuple]:
    """Metrics of an uninterrupted local run, on one CPU thread as each SLURM job here runs."""
    tmp = tmp_path_factory.mktemp("reference")
    spec = load_study(str(_study(tmp)))
    url = f"sqlite:///{tmp / 'reference.db'}"
    study = open_study(spec, open_storage(url), None, url)
    ensure_cells(study, spec, retry_failed=True)
    work(study, spec, RuntimeConfig(device="cpu", threads=1, checkpoint_dir=str(tmp / "ckpt")))
    return _metrics(study)


def _metrics(study: optuna.Study) -> dict[str, tuple]:
    return {r.cell: (r.metrics["top1"], r.metrics["top5"], r.metrics["loss"]) for r in read_records(study) if r.complete}


def _submit(study_file: Path, url: str, name: str, tmp_path: Path, partition: str, jobs: int, *more: str) -> list[str]:
    result = runner.invoke(app, ["submit", str(study_file), "--storage", url, "--name", name, "--jobs", str(jobs),
                                 "--partition", partition, "--job-dir", str(tmp_path / "slurm"), *more])
    assert result.exit_code == 0, result.output
    assert "submitted" in result.output and f"ecasweep status {name}" in result.output
    jobs_recorded = [j["job"] for j in optuna.load_study(study_name=name, storage=url).user_attrs[JOBS_ATTR]]
    assert len(jobs_recorded) == jobs
    return jobs_recorded


def _squeue(jobs: list[str]) -> list[tuple[str, str]]:
    ids = ",".join(sorted({j.split("_")[0] for j in jobs}))
    out = subprocess.run(["squeue", "-h", "-r", "-j", ids, "-o", "%i %T"], capture_output=True, text=True, timeout=30)
    if out.returncode != 0:  # the controller did not answer: nothing is known to be gone
        return [(ids, "UNKNOWN")]
    return [tuple(line.split()) for line in out.stdout.splitlines() if line.strip()]


def _wait_until_gone(jobs: list[str], timeout: float = WAIT_S) -> None:
    deadline = time.monotonic() + timeout
    while _squeue(jobs):
        if time.monotonic() > deadline:
            subprocess.run(["scancel", *{j.split("_")[0] for j in jobs}], timeout=30)
            pytest.fail(f"jobs {jobs} still queued after {timeout} s")
        time.sleep(0.5)


def _running_with_checkpoint(study: optuna.Study, ckpt: Path, timeout: float = WAIT_S) -> optuna.trial.FrozenTrial:
    """A trial running in a SLURM job with a checkpoint of epoch 1 to EPOCHS - 2 (well before its end)."""
    spec = load_study(str(ckpt.parent.parent / "slurm.toml"))
    cells = {c.key: c for c in spec.cells()}
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for t in study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.RUNNING,)):
            identity = spec.trial_config(cells[t.user_attrs["cell"]], RuntimeConfig()).identity()
            epochs = [int(p.stem.split("-")[1]) for p in (ckpt / identity).glob("epoch-*.pt")]
            if epochs and max(epochs) <= EPOCHS - 2 and "slurm_job" in t.user_attrs:
                return t
        time.sleep(0.1)
    pytest.fail("no trial with a checkpoint appeared")


def _status(name: str, url: str) -> dict:
    result = runner.invoke(app, ["status", name, "--storage", url, "--json"])
    assert result.exit_code == 0, result.output
    return json.loads(result.output)


def _complete_once(study: optuna.Study) -> None:
    done = Counter(r.cell for r in read_records(study) if r.complete)
    assert len(done) == 3 and set(done.values()) == {1}


# --- on a real SLURM ------------------------------------------------------------------------------------

@pytest.mark.slow
def test_a_two_job_array_runs_every_cell_once_with_the_metrics_of_a_local_run(
        tmp_path, slurm_cluster, postgres_url, unique_name, reference):
    study_file = _study(tmp_path)
    jobs = _submit(study_file, postgres_url, unique_name, tmp_path, slurm_cluster, 2, "--sbatch", "comment=ecasweep-test")
    array = jobs[0].split("_")[0]
    assert jobs == [f"{array}_0", f"{array}_1"]  # one job array
    script = (tmp_path / "slurm" / "jobs" / f"{array}_submission.sh").read_text()
    assert "#SBATCH --array=0-1%2" in script and "#SBATCH --signal=USR2@90" in script
    assert "#SBATCH --comment=ecasweep-test" in script and "--time" not in script  # the partition's limit
    _wait_until_gone(jobs)

    study = optuna.load_study(study_name=unique_name, storage=postgres_url)
    _complete_once(study)
    assert _metrics(study) == reference
    for t in study.trials:
        assert t.user_attrs["slurm_job"] in jobs and t.user_attrs["slurm_node"]
        assert t.user_attrs["slurm_array_task"] in (0, 1)
    status = _status(unique_name, postgres_url)
    assert [(j["job"], j["state"]) for j in status["jobs"]] == [(jobs[0], "done"), (jobs[1], "done")]
    assert not list((tmp_path / "slurm" / "checkpoints").rglob("*.pt"))  # cleared once stored
    again = runner.invoke(app, ["submit", str(study_file), "--storage", postgres_url, "--name", unique_name,
                                "--jobs", "2", "--job-dir", str(tmp_path / "slurm")])
    assert again.exit_code == 0 and "nothing submitted" in again.output, again.output
    assert len(optuna.load_study(study_name=unique_name, storage=postgres_url).user_attrs[JOBS_ATTR]) == 2
    optuna.delete_study(study_name=unique_name, storage=postgres_url)


def _processes() -> dict[int, tuple[bytes, bytes]]:
    """Every process's command line and environment, as /proc shows them (root in CI reads all)."""
    seen = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                seen[int(entry.name)] = ((entry / "cmdline").read_bytes(), (entry / "environ").read_bytes())
            except OSError:  # gone meanwhile, or not ours to read
                continue
    return seen


@pytest.mark.slow
def test_a_password_in_the_storage_url_is_in_no_job_file_and_on_no_command_line(
        tmp_path, slurm_cluster, postgres_url, unique_name):
    password = f"pw-{unique_name}"  # the server trusts local connections: it ignores the password
    url = with_password(postgres_url, password)
    assert password in url
    result = runner.invoke(app, ["submit", str(_study(tmp_path)), "--storage", url, "--name", unique_name,
                                 "--jobs", "1", "--partition", slurm_cluster, "--job-dir", str(tmp_path / "slurm")])
    assert result.exit_code == 0, result.output
    assert password not in result.output and PASSWORD_ENV not in os.environ
    jobs = [j["job"] for j in optuna.load_study(study_name=unique_name, storage=postgres_url).user_attrs[JOBS_ATTR]]
    in_job_env, deadline = False, time.monotonic() + WAIT_S
    while _squeue(jobs) and time.monotonic() < deadline:
        for pid, (cmdline, environ) in _processes().items():
            assert password.encode() not in cmdline, f"process {pid}: {cmdline!r}"
            in_job_env |= f"SLURM_JOB_ID={jobs[0]}".encode() in environ and \
                f"{PASSWORD_ENV}={password}".encode() in environ
        time.sleep(0.2)
    _wait_until_gone(jobs)
    _complete_once(optuna.load_study(study_name=unique_name, storage=postgres_url))  # the job reached the database
    assert in_job_env, "the job's processes did not get the password through their environment"
    root = tmp_path / "slurm"
    files = [p for p in root.rglob("*") if p.is_file()]
    assert any(p.name.endswith("_submitted.pkl") for p in files) and any(p.suffix == ".out" for p in files)
    for path in [root, *root.rglob("*")]:
        assert password.encode() not in (path.read_bytes() if path.is_file() else b""), path
        assert stat.S_IMODE(path.stat().st_mode) & 0o077 == 0, f"{path} is {oct(path.stat().st_mode)}"
    optuna.delete_study(study_name=unique_name, storage=postgres_url)


@pytest.mark.slow
def test_a_cancelled_job_leaves_its_trial_interrupted_and_another_job_resumes_it_from_its_checkpoint(
        tmp_path, slurm_cluster, postgres_url, unique_name, reference):
    jobs = _submit(_study(tmp_path), postgres_url, unique_name, tmp_path, slurm_cluster, 2, "--time", "10")
    study = optuna.load_study(study_name=unique_name, storage=postgres_url)
    victim = _running_with_checkpoint(study, tmp_path / "slurm" / "checkpoints")
    job = victim.user_attrs["slurm_job"]
    subprocess.run(["scancel", job], check=True, timeout=30)  # SIGTERM, as at a time limit or preemption
    _wait_until_gone(jobs)

    stopped = study._storage.get_trial(victim._trial_id)
    assert stopped.state.name == "FAIL" and stopped.user_attrs["fail_reason"] == "interrupted"
    (resumed,) = [r for r in read_records(study) if r.cell == victim.user_attrs["cell"] and r.complete]
    assert resumed.metrics["resumed_from_epoch"] >= 1  # from the cancelled job's checkpoint, not epoch 0
    assert resumed.metrics["slurm_job"] != job
    _complete_once(study)
    assert _metrics(study) == reference
    states = {j["job"]: j for j in _status(unique_name, postgres_url)["jobs"]}
    assert states[job]["state"] == "cancelled" and Path(states[job]["log"]).is_file()
    assert {j["state"] for k, j in states.items() if k != job} == {"done"}
    print(f"\nscancel {job} during trial {victim.number} ({victim.user_attrs['cell']}); trial "
          f"{resumed.number} resumed it from epoch {resumed.metrics['resumed_from_epoch']} in job "
          f"{resumed.metrics['slurm_job']}; all {len(reference)} cells' metrics equal the local run's")
    optuna.delete_study(study_name=unique_name, storage=postgres_url)


@pytest.mark.slow
def test_the_time_limit_warning_requeues_the_job_which_resumes_its_trial(
        tmp_path, slurm_cluster, postgres_url, unique_name, reference):
    (job,) = _submit(_study(tmp_path), postgres_url, unique_name, tmp_path, slurm_cluster, 1, "--time", "10")
    study = optuna.load_study(study_name=unique_name, storage=postgres_url)
    victim = _running_with_checkpoint(study, tmp_path / "slurm" / "checkpoints")
    # What SLURM sends SIGNAL_DELAY_S before the time limit (submitit's --signal=USR2@90).
    subprocess.run(["scancel", "--signal=USR2", job], check=True, timeout=30)
    deadline = time.monotonic() + WAIT_S
    while ("PENDING" not in {s for _, s in _squeue([job])}) and time.monotonic() < deadline:
        time.sleep(0.2)
    # A requeued job waits two minutes before it may start again; let it start in 5 s. Not at once: the
    # node revoked the first run's credential, and a start within the same second is killed as
    # "non-startable batch job: Job credential revoked" (slurmctld.log), so the job would never run again.
    subprocess.run(["scontrol", "update", f"JobId={job}", "StartTime=now+5"], check=True, timeout=30)
    _wait_until_gone([job])

    stopped = study._storage.get_trial(victim._trial_id)
    assert stopped.state.name == "FAIL" and stopped.user_attrs["fail_reason"] == "interrupted"
    (resumed,) = [r for r in read_records(study) if r.cell == victim.user_attrs["cell"] and r.complete]
    assert resumed.metrics["resumed_from_epoch"] >= 1
    assert resumed.metrics["slurm_job"] == job and resumed.metrics["slurm_restarts"] == 1
    _complete_once(study)
    assert _metrics(study) == reference
    print(f"\nSIGUSR2 to job {job} during trial {victim.number} ({victim.user_attrs['cell']}): requeued; trial "
          f"{resumed.number} resumed it from epoch {resumed.metrics['resumed_from_epoch']} after restart "
          f"{resumed.metrics['slurm_restarts']}; all {len(reference)} cells' metrics equal the local run's")
    optuna.delete_study(study_name=unique_name, storage=postgres_url)


# --- what is refused, before anything is submitted -------------------------------------------------------

def test_what_slurm_refuses_is_one_line_before_anything_is_written(tmp_path, slurm_cluster, postgres_url, unique_name):
    study_file = write_study(tmp_path, name="slurm", seeds=1, size=128, epochs=1, ks="[3]")
    result = runner.invoke(app, ["submit", str(study_file), "--storage", postgres_url, "--name", unique_name,
                                 "--partition", "no-such-partition", "--job-dir", str(tmp_path / "slurm")])
    assert result.exit_code == 2 and "partition" in result.output and "Traceback" not in result.output
    assert unique_name not in optuna.get_all_study_names(postgres_url) and not (tmp_path / "slurm").exists()


def test_sqlite_and_an_unshared_journal_are_refused_before_anything_is_submitted(tmp_path):
    study_file = write_study(tmp_path, name="slurm", seeds=1, size=128, epochs=1, ks="[3]")
    db = tmp_path / "sweep.db"
    result = runner.invoke(app, ["submit", str(study_file), "--storage", f"sqlite:///{db}", "--jobs", "2",
                                 "--job-dir", str(tmp_path / "slurm")])
    assert result.exit_code == 2
    assert "SQLite" in result.output and "postgresql://" in result.output and "Traceback" not in result.output
    assert not db.exists() and not (tmp_path / "slurm").exists()

    journal = runner.invoke(app, ["submit", str(study_file), "--storage", f"journal:{tmp_path / 'j.log'}",
                                  "--job-dir", str(tmp_path / "slurm")])
    assert journal.exit_code == 2 and "--shared-journal" in journal.output
    assert not (tmp_path / "j.log").exists() and not (tmp_path / "slurm").exists()


def test_no_submitit_or_no_slurm_is_one_line_naming_what_to_do(tmp_path, monkeypatch):
    study_file = write_study(tmp_path, name="slurm", seeds=1, size=128, epochs=1, ks="[3]")
    args = ["submit", str(study_file), "--storage", "postgresql://u@db.invalid/x", "--job-dir", str(tmp_path / "s")]
    with monkeypatch.context() as patch:
        patch.setitem(sys.modules, "submitit", None)  # `import submitit` raises ImportError
        result = runner.invoke(app, args)
    assert result.exit_code == 2 and "ecasweep[slurm]" in result.output and "Traceback" not in result.output
    pytest.importorskip("submitit")
    monkeypatch.setattr("ecasweep.launch.slurm.shutil.which", lambda name: None)
    result = runner.invoke(app, args)
    assert result.exit_code == 2 and "no SLURM here" in result.output and not (tmp_path / "s").exists()


def test_bad_slurm_options_are_one_line_each(tmp_path):
    study_file = write_study(tmp_path, name="slurm", seeds=1, size=128, epochs=1, ks="[3]")
    for args, words in ((["--time", "soon"], "--time"), (["--mem", "lots"], "--mem"), (["--jobs", "0"], "--jobs"),
                        (["--sbatch", "!!"], "--sbatch")):
        result = runner.invoke(app, ["submit", str(study_file), "--storage", "postgresql://u@db.invalid/x", *args])
        assert result.exit_code == 2 and words in result.output and "Traceback" not in result.output, result.output


def test_a_worker_refuses_sqlite_where_workers_on_other_machines_would_share_it(tmp_path, monkeypatch):
    url = f"sqlite:///{tmp_path / 'sweep.db'}"
    check_worker_storage(url, {})  # a worker on this machine: fine
    with pytest.raises(StorageError, match="SLURM job"):
        check_worker_storage(url, {"SLURM_JOB_ID": "7"})
    import socket

    check_worker_storage(url, {"SLURM_JOB_ID": "7", LOCAL_RUN_ENV: socket.gethostname()})  # started by `run` here
    monkeypatch.setattr("ecasweep.launch.shared.filesystem_type", lambda path: "nfs4")
    with pytest.raises(StorageError, match="network filesystem"):
        check_worker_storage(url, {})
    check_worker_storage("postgresql://me@db.example/sweeps", {"SLURM_JOB_ID": "7"})

    monkeypatch.setenv("SLURM_JOB_ID", "7")
    monkeypatch.delenv(LOCAL_RUN_ENV, raising=False)
    result = runner.invoke(app, ["worker", "tiny", "--storage", url])
    assert result.exit_code == 2 and "SQLite" in result.output and not (tmp_path / "sweep.db").exists()


# --- options and SLURM's answers --------------------------------------------------------------------------

def test_slurm_options_from_a_study_table_and_the_command_line():
    options = SlurmOptions.merged({"partition": "gpu", "time": "1-02:30", "gpus_per_job": 1, "sbatch": "exclusive"},
                                  time="90", mem="16G", sbatch=("--constraint=a100",))
    params = options.executor_parameters("ecasweep-x")
    assert params["partition"] == "gpu" and params["time"] == 90 and params["gpus_per_node"] == 1
    assert params["additional_parameters"] == {"constraint": "a100", "mem": "16G"}
    assert SlurmOptions(time="1-02:30").minutes() == 24 * 60 + 150
    assert SlurmOptions(time="2:00:01").minutes() == 121
    assert SlurmOptions().executor_parameters("x")["time"] is None  # no --time line: the partition's default
    with pytest.raises(SpecError, match="unknown key"):
        SlurmOptions.merged({"partitions": "gpu"})
    spec = load_study("kernel-size", overrides=["launcher.slurm.partition=gpu"])
    assert spec.launcher == {"slurm": {"partition": "gpu"}}
    assert spec.results_hash() == load_study("kernel-size").results_hash()  # where jobs run changes no result


def test_job_attributes_and_slurm_answers():
    assert job_attrs({}) == {}
    assert job_attrs({"SLURM_JOB_ID": "9", "SLURMD_NODENAME": "n1", "SLURM_RESTART_COUNT": "2"}) == \
        {"slurm_job": "9", "slurm_node": "n1", "slurm_restarts": 2}
    scontrol = ("JobId=13 ArrayJobId=12 ArrayTaskId=1 JobState=RUNNING NodeList=vm\n"
                "JobId=12 ArrayJobId=12 ArrayTaskId=2-3 JobState=PENDING NodeList=(null)\n")
    assert _parse_scontrol(scontrol) == {"12_1": ("RUNNING", "vm"), "12_2": ("PENDING", ""), "12_3": ("PENDING", "")}
    assert _parse_sacct("12_0|COMPLETED|vm\n12_1|CANCELLED by 0|vm\n") == \
        {"12_0": ("COMPLETED", "vm"), "12_1": ("CANCELLED", "vm")}


@pytest.mark.parametrize("url, public", [
    ("postgresql://me:s3cret@db:5432/sweeps", "postgresql://me@db:5432/sweeps"),
    ("postgresql://me@db/sweeps?password=s3cret&sslmode=require", "postgresql://me@db/sweeps?sslmode=require"),
    ("mysql+pymysql://me:s3cret@db/sweeps", "mysql+pymysql://me@db/sweeps"),
])
def test_a_job_gets_its_storage_url_back_from_the_url_without_password_and_its_environment(url, public, monkeypatch):
    from ecasweep.launch.slurm import SlurmWorker
    from ecasweep.store.storage import without_password

    stripped, password = without_password(url)
    assert (stripped, password) == (public, "s3cret")
    worker = SlurmWorker("s", stripped, "/ckpt")
    monkeypatch.delenv(PASSWORD_ENV, raising=False)
    assert worker.url == public
    monkeypatch.setenv(PASSWORD_ENV, password)
    assert without_password(worker.url) == (public, "s3cret")
