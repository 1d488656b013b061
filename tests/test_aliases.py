"""Arms that build the same model on a backbone train once and are reported under each label."""

from __future__ import annotations

import optuna
import pytest
import torch
from typer.testing import CliRunner

from ecasweep.backbones import build_model
from ecasweep.cli import app
from ecasweep.report import build_table
from ecasweep.results import cell_attrs, read_records
from ecasweep.spec import StudySpec, load_study

ADAPTIVE = "eca(k=adaptive,gamma=2,beta=1)"


def test_kernel_size_quick_trains_24_cells_not_28():
    spec = load_study("kernel-size")
    assert spec.aliases() == {b: {ADAPTIVE: "eca(k=3)"} for b in ("resnet-8", "resnet-14")}
    keys = [c.key for c in spec.cells()]
    assert len(keys) == 24 and not any(ADAPTIVE in k for k in keys)
    assert StudySpec.from_dict(spec.to_dict()) == spec and spec.to_dict()["aliases"] == spec.aliases()


def test_no_alias_where_the_adaptive_k_differs():
    spec = load_study("kernel-size", "imagenet")  # resnet-50: adaptive k is 5/5/5/7
    assert spec.aliases() == {} and len(spec.cells()) == 7 * 2 * spec.seeds


def test_an_alias_is_the_same_model():
    models = []
    for kwargs in ({"k": 3}, {"k": "adaptive", "gamma": 2.0, "beta": 1.0}):
        torch.manual_seed(0)
        models.append(build_model("resnet-8", "eca", num_classes=10, in_channels=1, **kwargs).state_dict())
    assert models[0].keys() == models[1].keys()
    assert all(torch.equal(models[0][k], models[1][k]) for k in models[0])


def test_report_shows_the_trials_under_both_labels_and_counts_them_once():
    spec = load_study("kernel-size", overrides=['backbones=["resnet-8"]', "seeds=3"])
    study = optuna.create_study(direction="maximize")
    for i, cell in enumerate(spec.cells()):
        attrs = cell_attrs(cell.key, cell.arm.id, cell.backbone, cell.seed,
                           {"attention": cell.arm.attention, **cell.arm.kwargs})
        failed = cell.arm.id == "eca(k=3)" and cell.seed == 2
        study.add_trial(optuna.trial.create_trial(
            state=optuna.trial.TrialState.FAIL if failed else optuna.trial.TrialState.COMPLETE,
            value=None if failed else 85.0 + i * 0.1, user_attrs={**attrs, **({} if failed else {"top1": 85.0 + i * 0.1})}))
    table = build_table(spec.to_dict(), read_records(study))
    rows = {r.arm: r for r in table.rows}
    assert (rows[ADAPTIVE].n, rows[ADAPTIVE].mean) == (rows["eca(k=3)"].n, rows["eca(k=3)"].mean) == (2, pytest.approx(85.65))  # cells 6, 7
    assert rows[ADAPTIVE].failed == 1 and table.failed == 1  # one failed cell, not two
    assert "is ECA (k=3) on resnet-8 (the same model)" in table.caption


def test_show_and_dry_run_list_the_aliases(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    runner = CliRunner()
    shown = runner.invoke(app, ["show", "kernel-size"])
    assert shown.exit_code == 0, shown.output
    assert f"on resnet-8: {ADAPTIVE} is eca(k=3) (k 3/3/3)" in shown.output
    dry = runner.invoke(app, ["run", "kernel-size", "--dry-run", "--set", "data.dataset=synthetic", "--set",
                              "data.subset=none", "--set", 'backbones=["resnet-8"]', "--storage",
                              f"sqlite:///{tmp_path / 'd.db'}"])
    assert dry.exit_code == 0, dry.output
    assert "aliases: 2 cells build the same model" in dry.output and "12 cells to run" in dry.output
    assert not (tmp_path / "d.db").exists()
