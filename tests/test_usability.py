"""What a new user meets in the first hour: bad values refused in one line (exit 2, nothing
written), runaway dry runs summarised or refused, help text printed as written, the right words,
tables that fit 80 columns, and `table --output` that infers its format."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from ecasweep.engine import train as train_module
from ecasweep.cli.app import app

from test_hardening import STUDY, nothing_written, refused, study, work  # noqa: F401  (work: fixture)

runner = CliRunner()
SYNTHETIC = ["--backbone", "resnet-8", "--dataset", "synthetic", "--synthetic-size", "128", "--epochs", "1",
             "--device", "cpu"]


# --- values that were accepted or crashed ------------------------------------------------------------

@pytest.mark.parametrize("args, needles", [
    (["--lr", "nan"], ("train.lr", "finite")),
    (["--lr", "inf"], ("train.lr", "finite")),
    (["--width", "1000000"], ("model.width", "parameters")),
    (["--data-dir", "/nonexistent/dir"], ("data directory /nonexistent/dir", "does not exist")),
    (["--recipe", "imagenet-resnet", "--momentum", "-1"], ("train.momentum",)),
])
def test_train_refuses_bad_values_in_one_line(work, args, needles):
    base = SYNTHETIC if "--data-dir" not in args else ["--backbone", "resnet-8", "--device", "cpu"]
    refused(["train", *base, *args], *needles)
    nothing_written(work)


@pytest.mark.parametrize("kind", ["empty", "file"])
def test_train_with_a_data_dir_that_holds_no_data_is_refused(work, kind):
    path = work / "data"
    path.mkdir() if kind == "empty" else path.write_text("x")
    refused(["train", "--backbone", "resnet-8", "--device", "cpu", "--data-dir", str(path)],
            "does not hold" if kind == "empty" else "is not a directory")


@pytest.mark.parametrize("args, needles", [
    (["--set", "model.width=1000000", "--dry-run"], ("model.width", "parameters")),
    (["--set", "data.dataset=fashion-mnist", "--set", "data.data_dir=/nonexistent/x", "--dry-run"],
     ("data directory /nonexistent/x",)),
    (["--set", 'backbones=["resnet-8"'], ("invalid TOML value", "Unclosed array")),
    (["--set", "seeds=10000000000", "--dry-run"], ("20,000,000,000 cells", "at most 100,000")),
    (["--workers", "-1"], ("--workers", "got -1")),
    (["--workers", "10000", "--dry-run"], ("--workers", "to 256")),
    (["--name", ""], ("--name",)),
])
def test_run_refuses_bad_values_in_one_line(work, args, needles):
    refused(["run", study(work), *args], *needles)
    nothing_written(work)


def test_a_heartbeat_that_is_not_a_number_is_refused(work, monkeypatch):
    monkeypatch.setenv("ECASWEEP_HEARTBEAT", "abc")
    refused(["run", study(work), "--workers", "1"], "ECASWEEP_HEARTBEAT", "'abc'")
    nothing_written(work)


def test_train_that_diverges_is_one_line_and_exit_1(work):
    result = runner.invoke(app, ["train", *SYNTHETIC, "--lr", "1e6", "--schedule", "constant", "--batch-size", "16",
                                 "--quiet"])
    assert result.exit_code == 1, result.output
    lines = [line for line in result.output.splitlines() if line.strip() and "GPU" not in line]
    assert len(lines) == 1 and "non-finite loss" in lines[0] and "Traceback" not in result.output


def test_ctrl_c_in_train_does_not_speak_of_trials_to_resume(work, monkeypatch):
    def interrupted(config, on_epoch=None):
        raise KeyboardInterrupt

    monkeypatch.setattr(train_module, "run_trial", interrupted)
    result = runner.invoke(app, ["train", *SYNTHETIC])
    assert result.exit_code == 130
    assert "interrupted" in result.output and "trials" not in result.output


# --- runaway dry runs ---------------------------------------------------------------------------------

def test_a_large_dry_run_is_summarised(work):
    result = runner.invoke(app, ["run", study(work), "--set", "seeds=5000", "--dry-run", "--workers", "2"],
                           terminal_width=80)
    assert result.exit_code == 0, result.output
    assert "10,000 cells" in result.output and "9,990 more" in result.output and "todo: 10,000" in result.output
    assert "2 x cpu" in result.output and len(result.output.splitlines()) < 30
    nothing_written(work)


# --- help text, words -----------------------------------------------------------------------------------

@pytest.mark.parametrize("command, needle", [
    ("plot", 'pip install "ecasweep[plot]"'),
    ("status", "[default: sqlite:///ecasweep.db]"),
    ("run", "[default: the study's own name]"),
    ("compare", "[default: the study's first]"),
])
def test_help_prints_brackets_as_written(command, needle):
    result = runner.invoke(app, [command, "--help"], env={"COLUMNS": "200"})
    assert result.exit_code == 0 and needle in result.output, result.output


def test_version():
    from ecasweep import __version__

    result = runner.invoke(app, ["--version"])
    assert result.exit_code == 0 and result.output.strip() == f"ecasweep {__version__}"


def test_one_of_a_thing_is_singular(work):
    result = runner.invoke(app, ["show", study(work)], terminal_width=200)
    assert result.exit_code == 0, result.output
    assert "1 seed;" in result.output and "1 epoch;" in result.output and "= 2 arms x 1 backbone x 1 seed" in \
        result.output


# --- 80 columns -----------------------------------------------------------------------------------------

def test_list_and_show_fit_80_columns_without_cutting_ids():
    listed = runner.invoke(app, ["list"], terminal_width=80)
    assert listed.exit_code == 0
    assert max(len(line) for line in listed.output.splitlines()) <= 80
    assert len(listed.output.splitlines()) <= 1 + 4 * len([l for l in listed.output.splitlines() if " · " in l])
    shown = runner.invoke(app, ["show", "gamma-beta"], terminal_width=80)
    assert shown.exit_code == 0
    assert "eca(k=adaptive,gamma=1,beta=1)" in shown.output
    assert max(len(line) for line in shown.output.splitlines()) <= 80


TWO_BACKBONES = STUDY.replace('backbones = ["resnet-8"]', 'backbones = ["resnet-8", "resnet-14"]').replace(
    '"eca"\nk = 3', '"eca"\nk = "adaptive"')


@pytest.fixture(scope="module")
def stored(tmp_path_factory):
    """A finished tiny study on two backbones (4 cells), in a SQLite file; read-only for the tests."""
    folder = tmp_path_factory.mktemp("stored")
    path = study(folder, TWO_BACKBONES)
    storage = f"sqlite:///{folder / 's.db'}"
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("ECASWEEP_CHECKPOINTS", str(folder / "checkpoints"))
        mp.setenv("ECASWEEP_HEARTBEAT", "1")
        result = runner.invoke(app, ["run", path, "--storage", storage, "--workers", "1", "--no-table"])
    assert result.exit_code == 0, result.output
    return storage


def test_status_fits_80_columns_with_whole_cell_ids(stored):
    result = runner.invoke(app, ["status", "tiny", "--storage", stored], terminal_width=80)
    assert result.exit_code == 0, result.output
    assert "resnet-14/eca(k=adaptive,gamma=2,beta=1)/seed=0" in result.output
    assert max(len(line) for line in result.output.splitlines()) <= 80


def test_compare_defaults_to_the_first_backbone(stored):
    result = runner.invoke(app, ["compare", "tiny", "eca(k=adaptive,gamma=2,beta=1)", "none", "--storage", stored,
                                 "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["backbone"] == "resnet-8"


# --- table --output -------------------------------------------------------------------------------------

def test_table_output_errors_are_one_line_and_write_nothing(stored, work):
    refused(["table", "tiny", "--storage", stored, "--format", "latex", "-o", "/nonexistent/dir/x.tex"],
            "/nonexistent/dir", "does not exist")
    refused(["table", "tiny", "--storage", stored, "--format", "latex", "-o", "."], "is a directory")
    refused(["table", "tiny", "--storage", stored, "-o", str(work / "x.txt")], "cannot tell the format", ".txt")
    assert not (work / "x.txt").exists()


@pytest.mark.parametrize("suffix, start", [(".md", "|"), (".csv", "label,"), (".json", "{"), (".tex", "\\")])
def test_table_output_format_follows_the_extension(stored, work, suffix, start):
    out = work / f"table{suffix}"
    result = runner.invoke(app, ["table", "tiny", "--storage", stored, "-o", str(out)])
    assert result.exit_code == 0, result.output
    assert out.read_text().lstrip().startswith(start), out.read_text()[:200]


def test_bench_tables_fit_80_columns_with_whole_variant_names():
    from rich.console import Console

    from ecasweep.bench import bench_modules, quick_settings, render

    console = Console(record=True, width=80, color_system=None)
    render({"modules": bench_modules("cpu", **quick_settings()["modules"])}, console)
    text = console.export_text()
    for name in ("se-var1", "se-var2", "se-var3", "se-gc", "eca-ns", "ceca"):
        assert f" {name} " in text, name
    assert max(len(line) for line in text.splitlines()) <= 80


def test_a_one_seed_one_epoch_caption_is_singular():
    from ecasweep import report

    spec = {"name": "x", "layout": "table2", "profile": "quick", "seeds": 1, "baseline": "none",
            "backbones": ["resnet-8"], "arms": [{"id": "none", "attention": "none", "kwargs": {}}],
            "data": {"dataset": "synthetic"}, "train": {"epochs": 1}}
    caption = report.build_table(spec, []).caption
    assert "1 epoch," in caption and "1 seed planned" in caption


def test_status_of_a_search_study_lists_its_trials(work):
    from test_cli import TINY

    storage = f"sqlite:///{work / 's.db'}"
    ran = runner.invoke(app, ["run", "search", "--storage", storage, *TINY, "--set", "data.val_split=64",
                              "--set", "search.n_trials=2", "--no-table"])
    assert ran.exit_code == 0, ran.output
    result = runner.invoke(app, ["status", "search", "--storage", storage, "--json"])
    assert result.exit_code == 0, result.output
    cells = json.loads(result.stdout)["cells"]
    assert len(cells) == 2 and {c["cell"] for c in cells} == {"resnet-8/trial-0", "resnet-8/trial-1"}
