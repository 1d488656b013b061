"""Arms that build the same model on a backbone train once and are reported under each label."""

from __future__ import annotations

import optuna
import pytest
import torch
from typer.testing import CliRunner

from ecasweep.models.backbones import build_model
from ecasweep.cli.app import app
from ecasweep.report import build_table
from ecasweep.store.results import cell_attrs, read_records
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
    assert "24 cells = 7 arms x 2 backbones x 2 seeds, less 4 of aliases" in shown.output
    dry = runner.invoke(app, ["run", "kernel-size", "--dry-run", "--set", "data.dataset=synthetic", "--set",
                              "data.subset=none", "--set", 'backbones=["resnet-8"]', "--storage",
                              f"sqlite:///{tmp_path / 'd.db'}"])
    assert dry.exit_code == 0, dry.output
    assert "aliases: 2 cells build the same model" in dry.output and "12 cells to run" in dry.output
    assert not (tmp_path / "d.db").exists()


def test_claims_count_an_aliased_hypothesis_once_and_never_test_an_arm_against_itself():
    from ecasweep.report.verdicts import SAME_MODEL, build_claims, render_claims

    spec = load_study("kernel-size", overrides=["seeds=6"])
    study = optuna.create_study(direction="maximize")
    for i, cell in enumerate(spec.cells()):
        top1 = 85.0 + (i % 7) * 0.1 + cell.seed * 0.01
        study.add_trial(optuna.trial.create_trial(
            state=optuna.trial.TrialState.COMPLETE, value=top1,
            user_attrs={**cell_attrs(cell.key, cell.arm.id, cell.backbone, cell.seed,
                                     {"attention": cell.arm.attention, **cell.arm.kwargs}), "top1": top1}))
    table = build_claims(spec.to_dict(), read_records(study))
    same = [r for r in table.rows if r.verdict == SAME_MODEL]
    # "adaptive k at least as good as k = 3" on both backbones: one model, nothing to test
    assert [(r.a, r.b) for r in same] == [(ADAPTIVE, "eca(k=3)")] * 2
    assert all(r.decided_at is None and r.effect is None and r.ci_low is None for r in same)
    # 13 claims on 2 backbones = 26 rows; less the 2 above and the 2 where "ECA (adaptive) beats SE"
    # repeats "ECA (k=3) beats SE": 22 hypotheses share alpha
    assert len(table.rows) == 26 and table.family == 22 and "over 22 distinct hypotheses" in table.caption
    adaptive, k3 = ([r for r in table.rows if r.a == a and r.b == "se(r=16)" and r.backbone == "resnet-8"][0]
                    for a in (ADAPTIVE, "eca(k=3)"))
    assert (adaptive.verdict, adaptive.low, adaptive.high) == (k3.verdict, k3.low, k3.high)
    assert "same model (alias)" in render_claims(table, "markdown")
