"""The ``methods`` study (the paper's Table 3): it validates, runs on synthetic data, and its table
carries the efficiency columns measured in the run with the paper's Table 3 figures beside them;
``bench models`` gets timm's rows."""

from __future__ import annotations

import sys
from types import SimpleNamespace

import pytest
from typer.testing import CliRunner

from ecasweep.sweep import runner
from ecasweep.models.timm_attention import INSTALL_HINT
from ecasweep.cli.app import app
from ecasweep.report import build_table, render
from ecasweep.report.efficiency import add_efficiency, paper_table3_row, table3_method
from ecasweep.report.labels import paper_reference
from ecasweep.spec import load_study

pytest.importorskip("timm.layers", reason=f"timm is not installed ({INSTALL_HINT})")

cli = CliRunner()
TINY = ["data.dataset=synthetic", "data.subset=none", "data.synthetic_size=128", "train.epochs=1",
        "train.batch_size=64", "train.eval_batch_size=128", "seeds=1", 'backbones=["resnet-8"]']


@pytest.mark.parametrize("profile", ["quick", "cifar", "imagenet"])
def test_methods_study_validates_on_every_profile(profile):
    spec = load_study("methods", profile)
    assert [a.id for a in spec.arms] == ["none", "se(r=16)", "cbam", "ge-theta-minus", "gc",
                                         "eca(k=adaptive,gamma=2,beta=1)"]
    assert spec.layout == "table3" and spec.baseline == "none"


def test_methods_study_runs_on_synthetic_data_with_efficiency_columns(tmp_path):
    outcome = runner.run("methods", overrides=TINY, storage_url=f"sqlite:///{tmp_path / 'm.db'}",
                         devices=["cpu"], workers=1, checkpoint_dir=str(tmp_path / "ckpt"))
    table = build_table(outcome.spec_dict, outcome.records)
    rows = {r.arm: r for r in table.rows}
    assert len(rows) == 6 and all(r.n == 1 for r in rows.values())
    for r in rows.values():
        assert r.train_images_per_s > 0 and r.infer_images_per_s > 0
        assert r.total_params > 0 and r.flops > 0
    assert rows["none"].train_overhead == 0 and rows["none"].infer_overhead == 0
    cbam = rows["cbam"]
    assert cbam.train_overhead == pytest.approx(rows["none"].train_images_per_s / cbam.train_images_per_s - 1)
    assert cbam.total_params > rows["none"].total_params
    assert cbam.paper_table3["method"] == "CBAM" and cbam.paper == 77.34  # ResNet-50's row: resnet-8 has none
    assert rows["eca(k=adaptive,gamma=2,beta=1)"].paper_table3["method"] == "ECA-Net"
    assert rows["gc"].paper_table3 is None and rows["ge-theta-minus"].paper_table3 is None
    markdown = render(table, "markdown")
    for header in ("MACs", "train img/s", "train overhead", "infer img/s", "paper train/infer overhead"):
        assert header in markdown
    assert "| CBAM |" in markdown and "GE-θ⁻" in markdown
    assert "\\theta" in render(table, "latex")


def test_efficiency_overheads_and_paper_rows():
    rows = [SimpleNamespace(backbone="resnet-50", arm=arm, params={"attention": att}, paper=None)
            for arm, att in (("none", "none"), ("cbam", "cbam"), ("gc", "gc"))]
    trials = {("resnet-50", "none"): [_record(100.0, 400.0), _record(120.0, 500.0), _record(110.0, 450.0)],
              ("resnet-50", "cbam"): [_record(80.0, 300.0), _record(90.0, 350.0)],
              ("resnet-50", "gc"): []}
    add_efficiency(rows, trials, "none", paper_reference())
    none, cbam, gc = rows
    assert (none.train_images_per_s, none.infer_images_per_s) == (110.0, 450.0)  # medians over seeds
    assert cbam.train_overhead == pytest.approx(110.0 / 85.0 - 1)
    assert cbam.infer_overhead == pytest.approx(450.0 / 325.0 - 1)
    assert gc.train_overhead is None and gc.train_images_per_s is None
    assert cbam.paper_table3["train_overhead"] == pytest.approx(1024 / 472 - 1)  # the paper's Table 3, R-50
    assert paper_table3_row({"attention": "cbam"}, "resnet-101", paper_reference())["infer_fps"] == 635
    assert table3_method({"attention": "se", "r": 8}) is None and table3_method({"attention": "eca", "k": 3}) is None


def _record(train: float, infer: float) -> SimpleNamespace:
    return SimpleNamespace(metrics={"images_per_second": train, "infer_images_per_second": infer})


def test_bench_models_has_the_timm_rows():
    from ecasweep.bench import bench_models, model_variants

    assert {"cbam", "ge-theta-minus", "gc"} <= set(model_variants())
    r = bench_models("resnet-8", "cpu", batch_size=2, repeats=1, warmup=0, variants=["none", "cbam", "gc"])
    rows = {row["attention"]: row for row in r["rows"]}
    assert rows["cbam"]["attention_params"] > 0 and rows["cbam"]["train_images_per_s"] > 0
    assert rows["gc"]["train_overhead"]["median"] > -1
    assert r["paper"]["cbam"]["train_fps"] == 472


def test_bad_timm_argument_in_a_study_is_one_line_and_exit_2(tmp_path):
    path = tmp_path / "bad.toml"
    path.write_text('layout = "table3"\n[[arms]]\nattention = "none"\n[[arms]]\nattention = "cbam"\nspatial_k = 4\n')
    result = cli.invoke(app, ["show", str(path)])
    assert result.exit_code == 2, result.output
    assert "spatial_k" in result.output and "odd" in result.output and "Traceback" not in result.output
    path.write_text('layout = "table3"\n[[arms]]\nattention = "ge-theta-minus"\nextent = 3\n')
    result = cli.invoke(app, ["show", str(path)])
    assert result.exit_code == 2 and "power of two" in result.output, result.output


def test_missing_timm_is_one_line_naming_the_install_command(monkeypatch):
    for module in [m for m in sys.modules if m == "timm" or m.startswith("timm.")]:
        monkeypatch.setitem(sys.modules, module, None)
    result = cli.invoke(app, ["train", "--attention", "cbam", "--backbone", "resnet-8", "--dataset", "synthetic",
                              "--epochs", "1"])
    assert result.exit_code == 2, result.output
    assert "pip install 'ecasweep[timm]'" in result.output and "Traceback" not in result.output
    result = cli.invoke(app, ["run", "methods", "--dry-run"])
    assert result.exit_code == 2 and INSTALL_HINT in result.output, result.output
    listed = cli.invoke(app, ["list"])  # the other studies are still listed
    assert listed.exit_code == 0 and "kernel-size" in listed.output and "methods" not in listed.output
