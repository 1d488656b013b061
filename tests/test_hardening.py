"""Bad input through the real CLI: one clear line naming the thing, exit code 2, no traceback, and
nothing written (no SQLite file, no study, no checkpoint). Also the security promises: masked
passwords, study files that cannot escape the output directory, checkpoints that cannot run code.

The property test (random TOML documents and --set values give a StudySpec or a SpecError, nothing
else) is ``tests/test_spec.py::test_any_document_gives_a_spec_or_a_spec_error``.
"""

from __future__ import annotations

import gzip
import logging
import os
import pickle
from pathlib import Path

import pytest
import torch
import torchvision
from typer.testing import CliRunner

from ecasweep.engine import data as D
from ecasweep.engine.checkpoint import CheckpointStore
from ecasweep.cli.app import app
from ecasweep.sweep.slots import default_checkpoint_dir

runner = CliRunner()

STUDY = """
name = "tiny"
layout = "table2"
baseline = "none"
seeds = 1
backbones = ["resnet-8"]

[data]
dataset = "synthetic"
synthetic_size = 128
subset = "none"

[train]
epochs = 1
batch_size = 64
eval_batch_size = 256

[[arms]]
attention = "none"

[[arms]]
attention = "eca"
k = 3
"""


@pytest.fixture
def work(tmp_path, monkeypatch) -> Path:
    """A fresh directory as the working directory; the default storage would be created here."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("ECASWEEP_STORAGE", f"sqlite:///{tmp_path / 'default.db'}")
    return tmp_path


def study(tmp_path: Path, text: str = STUDY, name: str = "study.toml") -> str:
    path = tmp_path / name
    path.write_text(text)
    return str(path)


def refused(args: list[str], *needles: str) -> str:
    """Run the CLI; assert exit 2, one line that holds every needle, no traceback."""
    result = runner.invoke(app, args)
    out = result.output
    assert result.exit_code == 2, out
    assert "Traceback" not in out and not isinstance(result.exception, Exception) or \
        isinstance(result.exception, SystemExit), out
    lines = [line for line in out.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), out
    for needle in needles:
        assert needle in lines[0], (needle, out)
    return lines[0]


def nothing_written(tmp_path: Path) -> None:
    leftovers = [p.name for p in tmp_path.rglob("*") if p.suffix in (".db", ".pt", ".log") or p.name == "checkpoints"]
    assert leftovers == [], leftovers


# --- study files, through `run` and `show` -----------------------------------------------------------

BAD_STUDIES = {
    "malformed TOML": ('name = "x\n', "invalid TOML"),
    "unknown key": (STUDY + 'epoch = 3\n', "epoch: unknown key"),
    "wrong type": (STUDY.replace("seeds = 1", 'seeds = "two"'), "seeds: expected an integer >= 1"),
    "empty axis": (STUDY + '[[grid]]\nattention = "eca"\nk = []\n', "empty axis"),
    "duplicate arms": (STUDY + '[[arms]]\nattention = "none"\n', "duplicate arm 'none'"),
    "k even": (STUDY.replace("k = 3", "k = 4"), "expected an odd integer >= 1"),
    "k zero": (STUDY.replace("k = 3", "k = 0"), "expected an odd integer >= 1"),
    "gamma <= 0": (STUDY.replace("k = 3", 'k = "adaptive"\ngamma = 0'), "gamma: expected a number > 0"),
    "r not dividing": (STUDY + '[[arms]]\nattention = "se"\nr = 5\n', "stage 1 (C=16)"),
    "groups not dividing": (STUDY + '[[arms]]\nattention = "se-gc"\ngroups = 3\n', "(C=16)"),
    "unknown attention": (STUDY.replace('attention = "eca"', 'attention = "eka"'), "did you mean 'eca'"),
    "unknown backbone": (STUDY.replace('"resnet-8"', '"resnet-9"'), "backbones"),
    "baseline not an arm": (STUDY.replace('baseline = "none"', 'baseline = "se(r=4)"'), "baseline"),
}


@pytest.mark.parametrize("command", ["run", "show"])
@pytest.mark.parametrize("case", sorted(BAD_STUDIES))
def test_a_bad_study_file_is_one_line_naming_the_key(work, command, case):
    text, needle = BAD_STUDIES[case]
    path = study(work, text)
    line = refused([command, path], needle)
    assert "study.toml" in line
    nothing_written(work)


@pytest.mark.parametrize("command", ["run", "show"])
def test_unknown_and_missing_studies(work, command):
    refused([command, "kernel-sise"], "unknown study 'kernel-sise'", "did you mean 'kernel-size'")
    refused([command, str(work / "nope.toml")], "nope.toml: no such study file")
    nothing_written(work)


@pytest.mark.parametrize("override, needle", [
    ("bogus=1", "--set bogus=1: bogus: unknown key"),
    ("train.lrr=0.1", "did you mean 'lr'"),
    ("train.lr=abc", "train.lr: expected a finite number > 0, got 'abc'"),
    ("train.lr=nan", "train.lr: expected a finite number, got nan"),
    ("train.epochs=-1", "train.epochs: expected an integer > 0"),
    ("noequals", "--set 'noequals': expected key=value"),
    ("=3", "expected a key like train.epochs"),
    ("data=3", "expected a table [data], got 3"),  # brackets printed as such, not read as Rich markup
])
def test_bad_overrides(work, override, needle):
    refused(["run", study(work), "--set", override], needle)
    nothing_written(work)


# --- storage --------------------------------------------------------------------------------------------

def test_malformed_storage_urls(work):
    refused(["run", study(work), "--storage", "notaurl"], "'notaurl' is not a URL", "sqlite:///")
    refused(["run", study(work), "--storage", "foo://bar"], "cannot open storage foo://bar")
    refused(["run", study(work), "--storage", "sqlite://"], "in-memory database")
    refused(["run", study(work), "--storage", "mysql://me:pw@127.0.0.1:1/db"], "driver", "mysql://me:***@")
    nothing_written(work)


def test_unreachable_postgresql_is_one_line_with_the_password_masked(work):
    url = "postgresql://user:s3cret@127.0.0.1:1/db"
    outputs = [refused(["run", study(work), "--storage", url], "cannot open storage", "user:***@127.0.0.1:1"),
               refused(["status", "tiny", "--storage", url], "cannot open storage"),
               refused(["table", "tiny", "--storage", url], "cannot open storage"),
               refused(["worker", "tiny", "--storage", url], "cannot open storage"),
               refused(["compare", "tiny", "a", "b", "--storage", url], "cannot open storage")]
    assert not [line for line in outputs if "s3cret" in line]
    env_result = runner.invoke(app, ["status", "tiny"], env={"ECASWEEP_STORAGE": url})
    assert env_result.exit_code == 2 and "s3cret" not in env_result.output
    nothing_written(work)


def test_sqlite_in_a_missing_or_read_only_directory(work):
    refused(["run", study(work), "--storage", f"sqlite:///{work / 'no' / 'such' / 'dir' / 'x.db'}"],
            "directory", "does not exist")
    if os.geteuid() != 0:  # root writes anywhere
        read_only = work / "ro"
        read_only.mkdir(mode=0o555)
        refused(["run", study(work), "--storage", f"sqlite:///{read_only / 'x.db'}"], "is not writable")
    refused(["run", study(work), "--storage", "sqlite:////proc/ecasweep.db"], "cannot open storage")
    nothing_written(work)


def test_a_file_that_is_not_a_database_or_belongs_to_another_program(work):
    import sqlite3

    text = work / "notes.db"
    text.write_text("hello, not a database\n" * 100)
    refused(["run", study(work), "--storage", f"sqlite:///{text}"], "not a usable SQLite database")
    other = work / "other.db"
    with sqlite3.connect(other) as conn:
        conn.execute("CREATE TABLE invoices (id INTEGER)")
    before = other.read_bytes()
    refused(["run", study(work), "--storage", f"sqlite:///{other}"], "database of another program", "invoices")
    refused(["status", "tiny", "--storage", f"sqlite:///{other}"], "database of another program")
    assert other.read_bytes() == before and text.read_text().startswith("hello")


def test_a_study_name_that_is_not_stored(work):
    db = work / "sweep.db"
    refused(["status", "tiny", "--storage", f"sqlite:///{db}"], "no database at")
    refused(["table", "tiny", "--storage", f"sqlite:///{db}"], "no database at")
    assert not db.exists()
    ok = runner.invoke(app, ["run", study(work), "--storage", f"sqlite:///{db}", "--no-table"])
    assert ok.exit_code == 0, ok.output
    refused(["status", "tyni", "--storage", f"sqlite:///{db}"], "no study named 'tyni'", "tiny")
    refused(["table", "tyni", "--storage", f"sqlite:///{db}"], "no study named 'tyni'")
    refused(["worker", "tyni", "--storage", f"sqlite:///{db}"], "no study named 'tyni'")


# --- data -------------------------------------------------------------------------------------------------

@pytest.fixture
def no_data(work, monkeypatch) -> Path:
    """No dataset anywhere: empty ECASWEEP_DATA, no Debian package, no cache, no network."""
    def offline(self):
        raise RuntimeError("no network (test)")

    monkeypatch.setattr(D, "DEBIAN_FASHION_MNIST", str(work / "debian"))
    monkeypatch.setenv("ECASWEEP_DATA", str(work / "empty"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(work / "cache"))
    (work / "empty").mkdir()
    monkeypatch.setattr(torchvision.datasets.FashionMNIST, "download", offline)
    monkeypatch.setattr(torchvision.datasets.CIFAR10, "download", offline)
    return work


def test_missing_dataset(no_data):
    text = STUDY.replace('dataset = "synthetic"', 'dataset = "fashion-mnist"')
    refused(["run", study(no_data, text)], "Fashion-MNIST not found", str(no_data / "empty"), "apt-get install")
    refused(["run", study(no_data, text.replace("fashion-mnist", "cifar10"))], "cifar10 not found")
    nothing_written(no_data)


def test_truncated_idx_files(no_data):
    folder = no_data / "empty"
    for name, shape in D.FASHION_MNIST_FILES.items():
        header = bytes([0, 0, 8, len(shape)]) + b"".join(n.to_bytes(4, "big") for n in shape)
        with gzip.open(folder / f"{name}.gz", "wb") as f:
            f.write(header + bytes(1000))  # far fewer bytes than the header promises
    text = STUDY.replace('dataset = "synthetic"', 'dataset = "fashion-mnist"')
    refused(["run", study(no_data, text)], "idx")
    (folder / "train-images-idx3-ubyte.gz").write_bytes(b"\x1f\x8b not really gzip")
    refused(["run", study(no_data, text)], "train-images-idx3-ubyte")
    nothing_written(no_data)


def test_corrupt_cifar(no_data):
    folder = no_data / "empty" / "cifar-10-batches-py"
    folder.mkdir()
    for name in ("data_batch_1", "data_batch_2", "data_batch_3", "data_batch_4", "data_batch_5", "test_batch",
                 "batches.meta"):
        (folder / name).write_bytes(b"garbage")
    text = STUDY.replace('dataset = "synthetic"', 'dataset = "cifar10"')
    refused(["run", study(no_data, text)], "cifar-10-batches-py")
    nothing_written(no_data)


def test_an_image_folder_without_classes(no_data):
    root = no_data / "images"
    (root / "train").mkdir(parents=True)
    (root / "val").mkdir()
    text = STUDY.replace('dataset = "synthetic"', f'dataset = "imagefolder"\ndata_dir = "{root}"')
    refused(["run", study(no_data, text)], "not an image folder", "train")
    nothing_written(no_data)


# --- devices -------------------------------------------------------------------------------------------

def test_cuda_where_there_is_none(work, monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    refused(["run", study(work), "--devices", "cuda"], "no CUDA GPU", "--devices cpu")
    refused(["run", study(work), "--devices", "gpu"], "unknown device 'gpu'")
    refused(["worker", "tiny", "--device", "cuda:1"], "no database")  # storage first: nothing to join
    nothing_written(work)


def test_an_out_of_range_cuda_index(work, monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    refused(["run", study(work), "--devices", "cuda:0,cuda:5"], "'cuda:5' does not exist", "cuda:0 to cuda:1")
    nothing_written(work)


def test_auto_falls_back_to_the_cpu_with_a_notice(work, monkeypatch, caplog):
    from ecasweep.engine import devices

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(devices, "_mps_available", lambda: False)
    monkeypatch.setattr(devices, "_noticed", [])
    with caplog.at_level(logging.WARNING, logger="ecasweep.engine.devices"):
        result = runner.invoke(app, ["run", study(work), "--devices", "auto", "--workers", "1", "--no-table"])
    assert result.exit_code == 0, result.output
    assert "no GPU found: device 'auto' runs on the CPU" in caplog.text


# --- security ------------------------------------------------------------------------------------------

def test_a_study_name_cannot_move_the_checkpoint_directory(tmp_path, monkeypatch):
    root = tmp_path / "checkpoints"
    monkeypatch.setenv("ECASWEEP_CHECKPOINTS", str(root))
    for name in ("../../etc/x", "..", ".", "/etc/passwd", "a/../../b", "", "~root", "..\\..\\x"):
        directory = Path(default_checkpoint_dir(name)).resolve()
        assert directory.parent == root.resolve() and directory.name not in ("", ".", ".."), name


def test_a_run_with_a_hostile_study_name_writes_only_under_its_directories(work, monkeypatch):
    monkeypatch.setenv("ECASWEEP_CHECKPOINTS", str(work / "out" / "checkpoints"))
    (work / "out").mkdir()
    path = study(work, STUDY.replace('name = "tiny"', 'name = "../../escaped"'))
    result = runner.invoke(app, ["run", path, "--storage", f"sqlite:///{work / 'out' / 'x.db'}", "--no-table"])
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in work.iterdir()) == ["out", "study.toml"]
    assert not (work.parent / "escaped").exists()
    assert [p.name for p in (work / "out" / "checkpoints").iterdir()] == ["_.._escaped"]


class _Exploit:
    def __reduce__(self):
        return os.system, (f"touch {Path(os.environ['EXPLOIT_MARKER'])}",)


def test_a_checkpoint_that_would_run_code_is_refused_not_executed(tmp_path, monkeypatch, caplog):
    marker = tmp_path / "pwned"
    monkeypatch.setenv("EXPLOIT_MARKER", str(marker))
    store = CheckpointStore(tmp_path / "ckpt", "0123abcd")
    store.save(1, {"model": {"w": torch.ones(2)}})
    store.directory.joinpath("epoch-2.pt").write_bytes(pickle.dumps({"model": _Exploit()}))
    torch.save({"model": _Exploit()}, store.directory / "epoch-3.pt")
    with caplog.at_level(logging.WARNING):
        epoch, state = store.load_latest()
    assert not marker.exists()
    assert epoch == 1 and torch.equal(state["model"]["w"], torch.ones(2))
    assert "skipping unreadable checkpoint" in caplog.text


def test_study_files_are_data_not_code(work):
    # TOML has no way to run code; a Python file given as a study is refused as invalid TOML.
    marker = work / "ran"
    path = study(work, f"import os\nos.system('touch {marker}')\n", name="evil.toml")
    refused(["run", path], "invalid TOML")
    assert not marker.exists()
