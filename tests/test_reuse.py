"""A cell trained once for every study that has it: identical cells of another study are read, not trained."""

from __future__ import annotations

import json

import optuna
from typer.testing import CliRunner

from ecasweep.cli.app import app
from ecasweep.store.results import read_records

from conftest import write_study

runner = CliRunner()


def test_a_study_reads_the_cells_another_study_finished_and_says_so(tmp_path, monkeypatch):
    monkeypatch.setenv("ECASWEEP_REUSE", "1")  # the default (the test suite turns it off)
    url = f"sqlite:///{tmp_path / 'r.db'}"
    first = write_study(tmp_path, name="first", seeds=2, size=256, epochs=1, ks="[3]")
    ran = runner.invoke(app, ["run", str(first), "--storage", url, "--devices", "cpu", "--no-table"])
    assert ran.exit_code == 0, ran.output
    (tmp_path / "b").mkdir()
    second = write_study(tmp_path / "b", name="second", seeds=3, size=256, epochs=1, ks="[3]")  # one more seed
    again = runner.invoke(app, ["run", str(second), "--storage", url, "--devices", "cpu", "--no-table"])
    assert again.exit_code == 0, again.output
    assert "6 cells read from trials other studies finished with the same model, recipe, data and seed: first (6)" \
        in again.output
    a = {r.cell: r for r in read_records(optuna.load_study(study_name="first", storage=url))}
    b = {r.cell: r for r in read_records(optuna.load_study(study_name="second", storage=url))}
    assert len(b) == 9
    for cell, r in b.items():
        if cell.endswith("seed=2"):  # not in the first study: trained here
            assert "reused_from" not in r.metrics and r.metrics["wall_seconds"] > 0
        else:
            assert r.metrics["reused_from"].startswith("first#") and r.value == a[cell].value
            assert {k: v for k, v in r.metrics.items() if k not in ("reused_from", "worker", "identity")} == \
                {k: v for k, v in a[cell].metrics.items() if k not in ("worker", "identity", "epoch")}
    out = tmp_path / "report"
    assert runner.invoke(app, ["report", "second", "--storage", url, "--output", str(out)]).exit_code == 0
    reused = json.loads((out / "report.json").read_text())["studies"][0]["reused"]
    assert len(reused) == 6 and all(v.startswith("first#") for v in reused.values())


def test_another_recipe_is_trained_not_read(tmp_path, monkeypatch):
    monkeypatch.setenv("ECASWEEP_REUSE", "1")
    url = f"sqlite:///{tmp_path / 'r.db'}"
    first = write_study(tmp_path, name="first", seeds=1, size=256, epochs=1, ks="[3]")
    assert runner.invoke(app, ["run", str(first), "--storage", url, "--devices", "cpu", "--no-table"]).exit_code == 0
    (tmp_path / "b").mkdir()
    second = write_study(tmp_path / "b", name="second", seeds=1, size=256, epochs=1, ks="[3]")
    result = runner.invoke(app, ["run", str(second), "--storage", url, "--devices", "cpu", "--no-table",
                                 "--set", "train.lr=0.04"])
    assert result.exit_code == 0, result.output
    assert "read from trials" not in result.output
    assert not [r for r in read_records(optuna.load_study(study_name="second", storage=url)) if "reused_from" in r.metrics]


def test_reuse_off_trains_every_cell_and_a_bad_value_is_one_line(tmp_path, monkeypatch):
    url = f"sqlite:///{tmp_path / 'r.db'}"
    first = write_study(tmp_path, name="first", seeds=1, size=256, epochs=1, ks="[3]")
    assert runner.invoke(app, ["run", str(first), "--storage", url, "--devices", "cpu", "--no-table"]).exit_code == 0
    (tmp_path / "b").mkdir()
    second = write_study(tmp_path / "b", name="second", seeds=1, size=256, epochs=1, ks="[3]")
    monkeypatch.setenv("ECASWEEP_REUSE", "yes")
    bad = runner.invoke(app, ["run", str(second), "--storage", url, "--devices", "cpu", "--no-table"])
    assert bad.exit_code == 2 and "ECASWEEP_REUSE: expected 1" in bad.output
    monkeypatch.setenv("ECASWEEP_REUSE", "0")
    result = runner.invoke(app, ["run", str(second), "--storage", url, "--devices", "cpu", "--no-table"])
    assert result.exit_code == 0 and "read from trials" not in result.output
    assert all("reused_from" not in r.metrics for r in read_records(optuna.load_study(study_name="second", storage=url)))
