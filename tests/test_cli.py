"""The command line as a user meets it: train, list, show, help, journal storage, search, reports."""

from __future__ import annotations

import json
import subprocess
import sys

import optuna
import pytest
from typer.testing import CliRunner

from ecasweep.cli.app import app
from ecasweep.store.results import read_records

runner = CliRunner()
TINY = ["--set", "data.dataset=synthetic", "--set", "data.subset=none", "--set", "data.synthetic_size=256",
        "--set", "train.epochs=1", "--set", "train.batch_size=64", "--set", "seeds=1",
        "--set", 'backbones=["resnet-8"]', "--workers", "1"]


def test_train_json_has_the_documented_metrics():
    result = runner.invoke(app, ["train", "--backbone", "resnet-8", "--attention", "eca", "--k", "3",
                                 "--dataset", "synthetic", "--epochs", "1", "--device", "cpu", "--json"])
    assert result.exit_code == 0, result.output
    metrics = json.loads(result.output)
    for key in ("top1", "top5", "loss", "epochs", "images_per_second", "wall_seconds", "total_params",
                "attention_params", "device"):
        assert key in metrics
    assert 0 <= metrics["top1"] <= metrics["top5"] <= 100
    assert metrics["attention_params"] == 9 and metrics["device"] == "cpu"


@pytest.mark.parametrize("args, expected", [
    (["train", "--attention", "eca", "--k", "4", "--dataset", "synthetic"], "k"),
    (["train", "--attention", "se", "--r", "5", "--dataset", "synthetic", "--backbone", "resnet-8"], "r=5"),
    (["train", "--backbone", "resnet-9", "--dataset", "synthetic"], "resnet-9"),
    (["train", "--attention", "bogus", "--dataset", "synthetic"], "bogus"),
    (["train", "--epochs", "0", "--dataset", "synthetic"], "train.epochs"),
    (["train", "--device", "cuda:7", "--dataset", "synthetic"], "cuda"),
])
def test_train_bad_input_is_one_line_and_exit_2(args, expected):
    result = runner.invoke(app, args)
    assert result.exit_code == 2, result.output
    assert expected in result.output and "Traceback" not in result.output


def test_list_and_show():
    listed = runner.invoke(app, ["list"])
    assert listed.exit_code == 0
    for name in ("kernel-size", "reduction", "interaction", "gamma-beta", "table2", "search"):
        assert name in listed.output
    shown = runner.invoke(app, ["show", "gamma-beta", "--profile", "imagenet"])
    assert shown.exit_code == 0, shown.output
    assert "5/5/5/7" in shown.output  # gamma 2, beta 1 on resnet-50
    spec = json.loads(runner.invoke(app, ["show", "kernel-size", "--json", "--set", "seeds=3"]).output)
    assert spec["seeds"] == 3 and len(spec["arms"]) == 7


@pytest.mark.parametrize("command", ["train", "list", "show", "run", "worker", "status", "table", "compare", "plot"])
def test_every_command_has_help_with_an_example(command):
    result = runner.invoke(app, [command, "--help"], terminal_width=200)
    assert result.exit_code == 0
    assert "Example" in result.output


def test_python_dash_m_works():
    result = subprocess.run([sys.executable, "-m", "ecasweep", "--help"], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0 and "run" in result.stdout


def test_journal_storage_runs_and_reports(tmp_path):
    storage = f"journal:{tmp_path / 'sweep.log'}"
    result = runner.invoke(app, ["run", "reduction", "--storage", storage, *TINY, "--set", "baseline=none"])
    assert result.exit_code == 0, result.output
    table = runner.invoke(app, ["table", "reduction", "--storage", storage, "--format", "json"])
    rows = json.loads(table.output)["rows"]
    assert len(rows) == 6 and all(r["n"] == 1 for r in rows)


def test_search_optimises_validation_accuracy_and_records_test(tmp_path):
    storage = f"sqlite:///{tmp_path / 's.db'}"
    result = runner.invoke(app, ["run", "search", "--storage", storage, *TINY, "--set", "data.val_split=64",
                                 "--set", "search.n_trials=3"])
    assert result.exit_code == 0, result.output
    study = optuna.load_study(study_name="search", storage=storage)
    finished = [t for t in study.trials if t.state.name in ("COMPLETE", "PRUNED")]
    assert len(finished) == 3
    for trial in study.trials:
        if trial.state.name == "COMPLETE":
            assert trial.value == trial.user_attrs["val_top1"]  # the objective is validation, never test
            assert "top1" in trial.user_attrs
            assert set(trial.params) >= {"attention", "k"}


def test_compare_and_plot_through_the_cli(tmp_path):
    storage = f"sqlite:///{tmp_path / 'r.db'}"
    assert runner.invoke(app, ["run", "reduction", "--storage", storage, *TINY, "--set", "seeds=2"]).exit_code == 0
    compared = runner.invoke(app, ["compare", "reduction", "se(r=16)", "none", "--storage", storage, "--json"])
    assert compared.exit_code == 0, compared.output
    data = json.loads(compared.output)
    assert len(data["rows"] if "rows" in data else data["seeds"]) == 2
    pytest.importorskip("matplotlib", reason="matplotlib is the optional [plot] extra")
    out = tmp_path / "fig.png"
    plotted = runner.invoke(app, ["plot", "reduction", "--storage", storage, "--output", str(out)])
    assert plotted.exit_code == 0, plotted.output
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    records = read_records(optuna.load_study(study_name="reduction", storage=storage))
    assert len([r for r in records if r.complete]) == 12
