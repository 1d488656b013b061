"""Shared fixtures: real data and PostgreSQL, skipped with a reason unless CI requires them."""

from __future__ import annotations

import os
import uuid
from pathlib import Path

import pytest

DEBIAN_FASHION_MNIST = Path("/usr/share/datasets/fashion-mnist")
PG_URL = os.environ.get("ECASWEEP_TEST_PG", "postgresql://postgres@127.0.0.1:5432/test")


def _required(variable: str) -> bool:
    return os.environ.get(variable) == "1"


@pytest.fixture(scope="session")
def fashion_mnist_dir() -> Path:
    """The Debian package's Fashion-MNIST; a skip (or, under ECASWEEP_REQUIRE_DATA=1, a failure)."""
    files = ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz",
             "t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz")
    if all((DEBIAN_FASHION_MNIST / f).exists() for f in files):
        return DEBIAN_FASHION_MNIST
    reason = f"Fashion-MNIST not found in {DEBIAN_FASHION_MNIST} (apt-get install dataset-fashion-mnist)"
    if _required("ECASWEEP_REQUIRE_DATA"):
        pytest.fail(reason + " but ECASWEEP_REQUIRE_DATA=1")
    pytest.skip(reason)


@pytest.fixture(scope="session")
def postgres_url() -> str:
    """A PostgreSQL URL that answers; a skip (or, under ECASWEEP_REQUIRE_PG=1, a failure)."""
    try:
        import sqlalchemy

        engine = sqlalchemy.create_engine(PG_URL, connect_args={"connect_timeout": 5})
        with engine.connect() as conn:
            conn.execute(sqlalchemy.text("SELECT 1"))
        engine.dispose()
        return PG_URL
    except Exception as exc:  # no driver, no server, no database: all mean "no PostgreSQL here"
        reason = f"no PostgreSQL at {PG_URL}: {type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
        if _required("ECASWEEP_REQUIRE_PG"):
            pytest.fail(reason + " but ECASWEEP_REQUIRE_PG=1")
        pytest.skip(reason)


@pytest.fixture(scope="session")
def slurm_cluster() -> str:
    """The partition of a SLURM cluster that takes jobs here (scripts/slurm-local.sh starts one), with
    submitit installed; a skip (or, under ECASWEEP_REQUIRE_SLURM=1, a failure)."""
    import shutil
    import subprocess

    reason = None
    try:
        import submitit  # noqa: F401
    except ImportError:
        reason = "submitit is not installed (pip install -e '.[slurm]')"
    if reason is None and not all(shutil.which(c) for c in ("sbatch", "srun", "sinfo", "scancel")):
        reason = "no SLURM here: sbatch/srun/sinfo/scancel not on PATH (sudo scripts/slurm-local.sh starts one)"
    if reason is None:
        try:
            info = subprocess.run(["sinfo", "-h", "-o", "%P %T"], capture_output=True, text=True, timeout=20)
            up = [line.split()[0].rstrip("*") for line in info.stdout.splitlines()
                  if line.split()[-1] in ("idle", "mixed", "allocated")]
            if up:
                return up[0]
            reason = f"no SLURM node takes jobs: sinfo said {(info.stdout + info.stderr).strip()[:200]!r}"
        except (OSError, subprocess.TimeoutExpired) as exc:
            reason = f"sinfo failed: {exc}"
    if _required("ECASWEEP_REQUIRE_SLURM"):
        pytest.fail(reason + " but ECASWEEP_REQUIRE_SLURM=1")
    pytest.skip(reason)


@pytest.fixture
def unique_name() -> str:
    """A study name no other test (or earlier CI run on the same database) uses."""
    return f"test-{uuid.uuid4().hex[:12]}"


@pytest.fixture(autouse=True)
def _isolated_env(monkeypatch, tmp_path):
    """Every test gets its own storage default, checkpoint dir and a fast heartbeat."""
    monkeypatch.setenv("ECASWEEP_STORAGE", f"sqlite:///{tmp_path / 'ecasweep.db'}")
    monkeypatch.setenv("ECASWEEP_CHECKPOINTS", str(tmp_path / "checkpoints"))
    monkeypatch.setenv("ECASWEEP_HEARTBEAT", "1")
    # Tests run the same tiny study under many names in one storage and mean to train it each time;
    # tests/test_reuse.py turns reading finished cells back on.
    monkeypatch.setenv("ECASWEEP_REUSE", "0")


#: a tiny grid study on synthetic data (none, se(r=4) and eca over ks), for end-to-end tests
STUDY = """
name = "{name}"
layout = "table2"
baseline = "none"
seeds = {seeds}
backbones = ["resnet-8"]

[data]
dataset = "synthetic"
synthetic_size = {size}
subset = "none"

[train]
epochs = {epochs}
batch_size = 64
lr = 0.05
eval_batch_size = 256

[[arms]]
attention = "none"

[[arms]]
attention = "se"
r = 4

[[grid]]
attention = "eca"
k = {ks}
"""


def write_study(tmp_path: Path, name: str = "faults", seeds: int = 2, size: int = 1024, epochs: int = 3,
                ks: str = "[3, 5]") -> Path:
    """Write the tiny study as ``<tmp_path>/<name>.toml`` and return its path."""
    path = tmp_path / f"{name}.toml"
    path.write_text(STUDY.format(name=name, seeds=seeds, size=size, epochs=epochs, ks=ks))
    return path
