"""Your own attention module in a study (models.user): file and importable references, entry points,
code identity on resume and on workers, the `new` scaffold, and every bad input as one line."""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from typer.testing import CliRunner

from ecasweep.cli.app import app
from ecasweep.engine.config import RuntimeConfig
from ecasweep.errors import SpecError
from ecasweep.spec import load_study

runner = CliRunner()
REPO = Path(__file__).resolve().parents[1]

MODULE = '''
import torch
from torch import nn


class MeanMaxGate(nn.Module):
    """ECA's gate on average and max pooling."""

    def __init__(self, channels, k=3, alpha=0.5):
        super().__init__()
        self.alpha = alpha
        self.conv = nn.Conv1d(1, 1, k, padding=k // 2, bias=False)

    def forward(self, x):
        y = self.alpha * x.mean((2, 3)) + (1 - self.alpha) * x.amax((2, 3))
        return x * torch.sigmoid(self.conv(y[:, None, :]))[:, 0, :, None, None]
'''

STUDY = '''
name = "{name}"
layout = "table2"
baseline = "none"
seeds = 1
backbones = ["resnet-8"]
margin = 0.5

[data]
dataset = "synthetic"
synthetic_size = 256
subset = "none"

[train]
epochs = 1
batch_size = 64
lr = 0.05
eval_batch_size = 256

[[arms]]
attention = "none"

[[arms]]
attention = "eca"
k = 3

[[arms]]
attention = "{attention}"
{args}

[[claims]]
kind = "superiority"
a = "{arm}"
b = "none"

[[claims]]
kind = "non-inferiority"
a = "{arm}"
b = "eca(k=3)"
'''


def write(tmp_path: Path, attention: str = "my_attn.py:MeanMaxGate", args: str = "alpha = 0.7",
          arm: str = "MeanMaxGate(alpha=0.7)", module: str | None = MODULE, name: str = "mine",
          file: str = "my_attn.py") -> Path:
    """A study next to a user's module, in ``tmp_path/study``; returns the study file."""
    folder = tmp_path / "study"
    folder.mkdir(exist_ok=True)
    if module is not None:
        (folder / file).parent.mkdir(parents=True, exist_ok=True)
        (folder / file).write_text(textwrap.dedent(module))
    path = folder / f"{name}.toml"
    path.write_text(STUDY.format(name=name, attention=attention, args=args, arm=arm))
    return path


def one_line_error(result, *expected: str) -> None:
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output, result.output
    lines = [line for line in result.output.strip().splitlines() if line.strip()]
    assert lines and lines[-1].startswith("error:"), result.output
    text = " ".join(result.output.split())
    for part in expected:
        assert part in text, (part, result.output)


# --------------------------------------------------------------------------------------- the spec

def test_a_file_module_is_resolved_identified_and_named_by_its_class(tmp_path):
    path = write(tmp_path)
    spec = load_study(str(path))
    arm = spec.arm("MeanMaxGate(alpha=0.7)")
    module = tmp_path / "study" / "my_attn.py"
    assert arm.attention == f"{module}:MeanMaxGate" and arm.kwargs == {"alpha": 0.7}
    record = spec.code[arm.attention]
    assert record["source"] == "my_attn.py:MeanMaxGate" and record["path"] == str(module)
    import hashlib

    assert record["sha256"] == hashlib.sha256(module.read_bytes()).hexdigest()
    # The results hash holds the module's hash, not its folder: a moved study keeps its results.
    assert "my_attn.py:MeanMaxGate" in json.dumps(spec.results_key()) and str(tmp_path) not in json.dumps(
        spec.results_key())
    from ecasweep.spec import StudySpec

    assert StudySpec.from_dict(json.loads(json.dumps(spec.to_dict()))) == spec


def test_show_cell_gives_a_train_command_with_the_modules_arguments_that_trains_the_cell(tmp_path):
    path = write(tmp_path)
    shown = runner.invoke(app, ["show", str(path), "--cell", "resnet-8/MeanMaxGate(alpha=0.7)/seed=0"])
    assert shown.exit_code == 0, shown.output
    words = shlex.split(shown.stdout.splitlines()[0])
    assert words[words.index("--kwarg") + 1] == "alpha=0.7" and "--alpha" not in words
    trained = runner.invoke(app, [*words[1:], "--json", "--quiet", "--device", "cpu"])
    assert trained.exit_code == 0, trained.output
    spec = load_study(str(path))
    cell = spec.cell("resnet-8/MeanMaxGate(alpha=0.7)/seed=0")
    assert json.loads(trained.stdout)["identity"] == spec.trial_config(cell, RuntimeConfig()).identity()
    for given, expected in ((["--kwarg", "alpha"], "expected NAME=VALUE"), (["--kwarg", "k=5"], "use --k")):
        one_line_error(runner.invoke(app, [*words[1:], *given, "--quiet"]), expected)


def test_arguments_at_their_default_are_dropped_and_a_grid_expands(tmp_path):
    path = write(tmp_path, args="k = 3", arm="MeanMaxGate")
    assert load_study(str(path)).arm_ids() == ["none", "eca(k=3)", "MeanMaxGate"]
    text = path.read_text() + '\n[[grid]]\nattention = "my_attn.py:MeanMaxGate"\nk = [5, 7]\nalpha = [0.5, 1.0]\n'
    path.write_text(text)
    assert load_study(str(path)).arm_ids()[3:] == ["MeanMaxGate(k=5)", "MeanMaxGate(k=5,alpha=1)",
                                                   "MeanMaxGate(k=7)", "MeanMaxGate(k=7,alpha=1)"]


def test_set_overrides_reach_a_users_arm(tmp_path):
    path = write(tmp_path)
    spec = load_study(str(path), overrides=['arms=[{attention = "my_attn.py:MeanMaxGate", k = 5}, '
                                            '{attention = "none"}]', "claims=[]"])
    assert spec.arm_ids() == ["MeanMaxGate(k=5)", "none"]


def test_an_importable_module_hashes_its_packages_files(tmp_path, monkeypatch):
    pkg = tmp_path / "lib" / "my_pkg"
    pkg.mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "attn.py").write_text(textwrap.dedent(MODULE))
    (pkg / "helpers.py").write_text("X = 1\n")
    monkeypatch.syspath_prepend(str(tmp_path / "lib"))
    path = write(tmp_path, attention="my_pkg.attn:MeanMaxGate", module=None)
    spec = load_study(str(path))
    record = spec.code["my_pkg.attn:MeanMaxGate"]
    assert record["module"] == "my_pkg.attn" and record["path"] is None and len(record["sha256"]) == 64
    (pkg / "helpers.py").write_text("X = 2\n")  # another file of the package: another identity
    from ecasweep.models import user

    assert user.identify("my_pkg.attn:MeanMaxGate")["sha256"] != record["sha256"]
    with pytest.raises(user.UserCodeError, match="package 'my_pkg' changed since the study ran"):
        user.verify(spec.code, "mine")


def test_the_module_is_counted_as_attention_and_builds_on_every_backbone(tmp_path):
    import torch

    from ecasweep.models.backbones import build_model, summarize

    ref = f"{write(tmp_path).parent / 'my_attn.py'}:MeanMaxGate"
    for backbone, stages in (("resnet-8", 3), ("resnet-18", 4), ("mobilenet-v2", 7)):
        model = build_model(backbone, ref, num_classes=10, k=5)
        summary = summarize(model, (3, 32, 32))
        assert summary["attention_params"] == 5 * summary["attention_modules"] > 0, backbone
        assert model(torch.randn(2, 3, 32, 32)).shape == (2, 10)


# ---------------------------------------------------------------------------------- end to end

def test_run_table_claims_compare_bench_then_a_changed_file_is_refused(tmp_path):
    path = write(tmp_path)
    storage = f"sqlite:///{tmp_path / 'user.db'}"
    result = runner.invoke(app, ["run", str(path), "--storage", storage, "--workers", "1", "--devices", "cpu"])
    assert result.exit_code == 0, result.output
    table = json.loads(runner.invoke(app, ["table", "mine", "--storage", storage, "--format", "json"]).output)
    rows = {row["arm"]: row for row in table["rows"]}
    assert set(rows) == {"none", "eca(k=3)", "MeanMaxGate(alpha=0.7)"} and rows["MeanMaxGate(alpha=0.7)"]["n"] == 1
    claims = runner.invoke(app, ["table", "mine", "--storage", storage, "--claims"], terminal_width=200)
    assert claims.exit_code == 0 and "MeanMaxGate(alpha=0.7) > none" in claims.output, claims.output
    compared = runner.invoke(app, ["compare", "mine", "MeanMaxGate(alpha=0.7)", "eca(k=3)", "--storage", storage,
                                   "--json"])
    assert compared.exit_code == 0, compared.output
    import optuna

    study = optuna.load_study(study_name="mine", storage=storage)
    mine = next(t for t in study.trials if t.user_attrs["arm"] == "MeanMaxGate(alpha=0.7)")
    assert mine.params["attention"] == "my_attn.py:MeanMaxGate" and mine.params["alpha"] == 0.7
    assert mine.user_attrs["attention_params"] == 9 and mine.user_attrs["flops"] > 0  # 3 modules x k = 3
    assert mine.user_attrs["arm_params"] == {"attention": "MeanMaxGate", "alpha": 0.7}
    from ecasweep.bench import bench_models

    ref = f"{path.parent / 'my_attn.py'}:MeanMaxGate"
    bench = bench_models("resnet-8", "cpu", batch_size=2, repeats=1, warmup=0, variants=["none", ref])
    assert bench["rows"][1]["attention"] == ref and bench["rows"][1]["attention_params"] == 9

    module = path.parent / "my_attn.py"
    module.write_text(module.read_text() + "\n# a change\n")
    resumed = runner.invoke(app, ["run", str(path), "--storage", storage, "--workers", "1"])
    one_line_error(resumed, str(module), "changed since the study ran", "--name")
    worker = runner.invoke(app, ["worker", "mine", "--storage", storage])
    one_line_error(worker, str(module), "changed since the study ran", "--name")
    fresh = runner.invoke(app, ["run", str(path), "--storage", storage, "--name", "mine-v2", "--dry-run"])
    assert fresh.exit_code == 0, fresh.output


def test_a_worker_in_another_directory_imports_the_module_from_its_path(tmp_path):
    """The stored spec holds the file's absolute path and hash: a worker started elsewhere (as a
    SLURM job or another machine's worker is) imports it from there and checks its hash."""
    from ecasweep.spec import load_study as load
    from ecasweep.store.storage import open_storage
    from ecasweep.sweep.cells import ensure_cells
    from ecasweep.sweep.study import open_study

    path = write(tmp_path)
    url = f"sqlite:///{tmp_path / 'user.db'}"
    spec = load(str(path), overrides=["claims=[]"])
    ensure_cells(open_study(spec, open_storage(url), url=url), spec, retry_failed=True)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    env = {**os.environ, "ECASWEEP_STORAGE": url}
    out = subprocess.run([sys.executable, "-m", "ecasweep", "worker", "mine", "--device", "cpu"], cwd=elsewhere,
                         env=env, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stdout + out.stderr
    import optuna

    trials = optuna.load_study(study_name="mine", storage=url).trials
    assert sorted(t.user_attrs["arm"] for t in trials if t.state.name == "COMPLETE") == \
        ["MeanMaxGate(alpha=0.7)", "eca(k=3)", "none"]


# --------------------------------------------------------------------------------- bad input

BAD_FILES = {
    "syntax": ("import torch\nclass MeanMaxGate(\n", ["my_attn.py, line 2", "syntax error"]),
    "import": ("import torch\nimport not_a_module_anywhere\n", ["my_attn.py, line 2", "ModuleNotFoundError",
                                                               "not_a_module_anywhere"]),
    "raises": ("x = 1\nraise RuntimeError('boom')\n", ["my_attn.py, line 2", "RuntimeError: boom"]),
    "no class": ("import torch\nclass Other(torch.nn.Module):\n    pass\n", ["no 'MeanMaxGate' in it",
                                                                           "it defines: Other"]),
    "not a module": ("class MeanMaxGate:\n    def __init__(self, channels, alpha=0.5):\n        pass\n",
                     ["MeanMaxGate is not an nn.Module subclass"]),
    "factory returns junk": ("def MeanMaxGate(channels, alpha=0.5):\n    return 3\n",
                             ["MeanMaxGate(16, ...) returned int, not an nn.Module"]),
    "shape": ("import torch\nclass MeanMaxGate(torch.nn.Module):\n    def __init__(self, channels, alpha=0.5):\n"
              "        super().__init__()\n    def forward(self, x):\n        return x.mean((2, 3))\n",
              ["maps a (2, 16, 8, 8) input to shape (2, 16)", "must return a tensor of its input's shape"]),
    "constructor": ("import torch\nclass MeanMaxGate(torch.nn.Module):\n    def __init__(self, channels, alpha=0.5):\n"
                    "        super().__init__()\n        raise ValueError('alpha too large')\n",
                    ["stage 1 (C=16)", "ValueError: alpha too large"]),
}


@pytest.mark.parametrize("case", sorted(BAD_FILES))
def test_a_bad_module_is_one_line_exit_2_and_writes_nothing(tmp_path, case):
    source, expected = BAD_FILES[case]
    path = write(tmp_path, module=source)
    db = tmp_path / "bad.db"
    result = runner.invoke(app, ["run", str(path), "--storage", f"sqlite:///{db}"])
    one_line_error(result, *expected)
    assert not db.exists()


@pytest.mark.parametrize("attention, args, expected", [
    ("missing.py:MeanMaxGate", "", ["missing.py: no such file (looked in"]),
    ("my_attn.py:", "", ["expected 'file.py:Class'"]),
    ("my_attn.py:MeanMaxGate", "beta = 2", ["MeanMaxGate does not take beta; it takes: k, alpha"]),
    ("my_attn.py:MeanMaxGate", "alpha = [1, 2]", ["alpha: expected a number, a string or a boolean"]),
    ("my_attn.py:MeanMaxGate", 'id = "eca"', ["'eca' shadows the built-in attention 'eca'"]),
    ("no_such_pkg_xyz.attn:MeanMaxGate", "", ["no module named 'no_such_pkg_xyz'"]),
    ("ecaa", "", ["unknown attention 'ecaa'", "did you mean 'eca'", "my_attn.py:MyAttention"]),
])
def test_bad_references_and_arguments_are_one_line(tmp_path, attention, args, expected):
    path = write(tmp_path, attention=attention, args=args, arm="none")
    text = path.read_text().split("[[claims]]")[0]  # claims name arms these cases do not make
    path.write_text(text)
    db = tmp_path / "bad.db"
    result = runner.invoke(app, ["run", str(path), "--storage", f"sqlite:///{db}"])
    one_line_error(result, "arms[2]", *expected)
    assert not db.exists()


def test_a_search_space_refuses_a_users_module(tmp_path):
    path = write(tmp_path)
    path.write_text('layout = "search"\nbackbones = ["resnet-8"]\n[data]\nval_split = 100\n[search]\nn_trials = 2\n'
                    '[search.space]\nattention = ["eca", "my_attn.py:MeanMaxGate"]\n')
    with pytest.raises(SpecError, match="a search space samples ecasweep's own variants"):
        load_study(str(path))


# ------------------------------------------------------------------------------- entry points

def _install(tmp_path: Path, entries: str, module: str = MODULE) -> Path:
    """A package 'mine_pkg' 0.3 with entry points, installed by putting its dist-info on sys.path."""
    site = tmp_path / "site"
    (site / "mine_pkg").mkdir(parents=True)
    (site / "mine_pkg" / "__init__.py").write_text(textwrap.dedent(module))
    info = site / "mine_pkg-0.3.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: mine-pkg\nVersion: 0.3\n")
    (info / "entry_points.txt").write_text(textwrap.dedent(entries))
    (info / "top_level.txt").write_text("mine_pkg\n")
    return site


def test_an_entry_point_name_works_after_install(tmp_path, monkeypatch):
    site = _install(tmp_path, "[ecasweep.attention]\nmine = mine_pkg:MeanMaxGate\n")
    monkeypatch.syspath_prepend(str(site))
    path = write(tmp_path, attention="mine", module=None, arm="mine(alpha=0.7)")
    spec = load_study(str(path))
    record = spec.code["mine"]
    assert spec.arm("mine(alpha=0.7)").attention == "mine"
    assert record["entry_point"] == "mine" and record["version"] == "0.3" and record["module"] == "mine_pkg"
    from ecasweep.models.attention import create_attention

    assert create_attention("mine", 16, k=5).conv.kernel_size == (5,)


@pytest.mark.parametrize("entries, expected", [
    ("[ecasweep.attention]\nmine = mine_pkg:Missing\n", ["entry point 'mine'", "failed to load",
                                                          "AttributeError"]),
    ("[ecasweep.attention]\nmine = mine_pkg:MeanMaxGate\neca = mine_pkg:MeanMaxGate\n",
     ["entry point 'eca'", "mine-pkg 0.3", "shadows the built-in attention 'eca'"]),
])
def test_a_bad_entry_point_is_one_line(tmp_path, monkeypatch, entries, expected):
    monkeypatch.syspath_prepend(str(_install(tmp_path, entries)))
    path = write(tmp_path, attention="mine", module=None, arm="none")
    path.write_text(path.read_text().split("[[claims]]")[0])
    db = tmp_path / "bad.db"
    one_line_error(runner.invoke(app, ["run", str(path), "--storage", f"sqlite:///{db}"]), *expected)
    assert not db.exists()


# ---------------------------------------------------------------------------------- scaffold

def test_new_writes_a_study_and_a_template_that_load(tmp_path):
    result = runner.invoke(app, ["new", "my-study", "--attention", "my_attn.py:MyAttention", "--dir", str(tmp_path)])
    assert result.exit_code == 0, result.output
    spec = load_study(str(tmp_path / "my-study.toml"))
    assert spec.arm_ids() == ["none", "se(r=16)", "eca(k=adaptive,gamma=2,beta=1)", "eca(k=3)", "MyAttention"]
    assert spec.backbones == ["resnet-8", "resnet-14"]  # the quick profile's
    assert {(c.kind, c.a, c.b) for c in spec.claims} == {
        ("superiority", "MyAttention", "none"), ("non-inferiority", "MyAttention", "eca(k=3)"),
        ("non-inferiority", "MyAttention", "eca(k=adaptive,gamma=2,beta=1)"),
        ("equivalence", "MyAttention", "se(r=16)")}
    # Written once: a second `new` refuses, and keeps the user's module as it is.
    (tmp_path / "my_attn.py").write_text((tmp_path / "my_attn.py").read_text() + "# mine now\n")
    again = runner.invoke(app, ["new", "my-study", "--attention", "my_attn.py:MyAttention", "--dir", str(tmp_path)])
    one_line_error(again, "exists", "--force")
    assert (tmp_path / "my_attn.py").read_text().endswith("# mine now\n")


def test_new_with_a_broken_module_writes_nothing(tmp_path):
    (tmp_path / "my_attn.py").write_text("class MyAttention(:\n")
    result = runner.invoke(app, ["new", "s", "--attention", "my_attn.py:MyAttention", "--dir", str(tmp_path)])
    one_line_error(result, "my_attn.py, line 1", "syntax error")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["my_attn.py"]


def test_the_shipped_example_loads():
    spec = load_study(str(REPO / "examples" / "mean-max-eca" / "mean-max-eca.toml"))
    assert "MeanMaxECA" in spec.arm_ids() and len(spec.claims) == 4


# ------------------------------------------------------------------------------------- SLURM

@pytest.mark.slow
def test_a_slurm_job_runs_a_users_module_from_its_path(tmp_path, slurm_cluster, postgres_url, unique_name):
    """A SLURM job (another process, started by the cluster in the job folder) imports the user's
    module from the path the study recorded, checks its hash and runs its cells; once the file has
    changed, submitting more jobs to the study is refused in one line."""
    import time

    import optuna

    path = write(tmp_path)
    result = runner.invoke(app, ["submit", str(path), "--storage", postgres_url, "--name", unique_name, "--jobs", "1",
                                 "--partition", slurm_cluster, "--job-dir", str(tmp_path / "slurm")])
    assert result.exit_code == 0, result.output
    deadline = time.monotonic() + 300
    done: list[str] = []
    while time.monotonic() < deadline:
        trials = optuna.load_study(study_name=unique_name, storage=postgres_url).trials
        done = sorted(t.user_attrs["arm"] for t in trials if t.state.name == "COMPLETE")
        if len(done) == 3:
            break
        time.sleep(1)
    logs = "\n".join(p.read_text(errors="replace")[-2000:] for p in (tmp_path / "slurm").rglob("*.err"))
    assert done == ["MeanMaxGate(alpha=0.7)", "eca(k=3)", "none"], logs
    trials = optuna.load_study(study_name=unique_name, storage=postgres_url).trials
    mine = next(t for t in trials if t.user_attrs["arm"] == "MeanMaxGate(alpha=0.7)")
    assert "slurm_job" in mine.user_attrs and mine.user_attrs["attention_params"] == 9
    module = path.parent / "my_attn.py"
    module.write_text(module.read_text() + "\n# a change\n")
    again = runner.invoke(app, ["submit", str(path), "--storage", postgres_url, "--name", unique_name, "--jobs", "1",
                                "--partition", slurm_cluster, "--job-dir", str(tmp_path / "slurm")])
    one_line_error(again, str(module), "changed since the study ran", "--name")


# ------------------------------------------------------------------------------ user backbones

NET = '''
from torch import nn


def build(make_attention, num_classes, in_channels):
    layers, c_in = [], in_channels
    for c in (8, 16):
        layers += [nn.Conv2d(c_in, c, 3, padding=1, bias=False), nn.BatchNorm2d(c), make_attention(c),
                   nn.ReLU(inplace=True), nn.MaxPool2d(2)]
        c_in = c
    return nn.Sequential(*layers, nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(c_in, num_classes))
'''


def _with_backbone(tmp_path: Path, net: str = NET) -> Path:
    path = write(tmp_path)
    (path.parent / "my_net.py").write_text(textwrap.dedent(net))
    path.write_text(path.read_text().replace('backbones = ["resnet-8"]', 'backbones = ["my_net.py:build"]'))
    return path


def test_a_users_backbone_runs_each_arm_with_the_attention_where_it_asks(tmp_path):
    path = _with_backbone(tmp_path)
    spec = load_study(str(path))
    net = str(path.parent / "my_net.py") + ":build"
    assert spec.backbones == [net] and spec.code[net]["kind"] == "backbone"
    assert spec.results_key()["backbones"] == ["my_net.py:build"]
    from ecasweep.models.backbones import build_model, summarize

    model = build_model(net, "eca", k="adaptive")
    assert model.kernel_sizes == [3, 3] and summarize(model, (3, 32, 32))["attention_params"] == 6
    storage = f"sqlite:///{tmp_path / 'net.db'}"
    result = runner.invoke(app, ["run", str(path), "--storage", storage, "--workers", "1", "--devices", "cpu"])
    assert result.exit_code == 0, result.output
    import optuna

    trials = optuna.load_study(study_name="mine", storage=storage).trials
    assert sorted(t.user_attrs["arm"] for t in trials if t.state.name == "COMPLETE") == \
        ["MeanMaxGate(alpha=0.7)", "eca(k=3)", "none"]
    assert {t.params["backbone"] for t in trials} == {"my_net.py:build"}


@pytest.mark.parametrize("net, expected", [
    ("def build(make_attention, num_classes, in_channels):\n    return 3\n", ["returned int, not an nn.Module"]),
    ("from torch import nn\ndef build(make_attention, num_classes, in_channels):\n"
     "    return nn.Sequential(nn.Flatten(), nn.LazyLinear(5))\n", ["must return (2, 10) logits"]),
    ("def build(:\n", ["my_net.py, line 1", "syntax error"]),
])
def test_a_bad_backbone_is_one_line(tmp_path, net, expected):
    path = _with_backbone(tmp_path, net)
    db = tmp_path / "bad.db"
    one_line_error(runner.invoke(app, ["run", str(path), "--storage", f"sqlite:///{db}"]), *expected)
    assert not db.exists()


def test_a_worker_without_the_file_refuses_in_one_line(tmp_path):
    from ecasweep.models import user

    spec = load_study(str(write(tmp_path)))
    user.verify(spec.code, "mine")  # the same file: nothing to say
    (tmp_path / "study" / "my_attn.py").unlink()
    with pytest.raises(user.UserCodeError) as e:
        user.verify(spec.code, "mine")
    assert "runs my_attn.py:MeanMaxGate but here" in str(e.value) and "my_attn.py: cannot read" in str(e.value)
    assert "\n" not in str(e.value)
