"""ecasweep.report on a study written through Optuna's real storage (no training)."""

import csv
import io
import json
import math

import numpy as np
import optuna
import pytest
from rich.console import Console
from scipy import stats as sst

from ecasweep import report
from ecasweep.errors import EcasweepError
from ecasweep.store.results import SPEC_ATTR, cell_attrs, read_records

optuna.logging.set_verbosity(optuna.logging.WARNING)

ARMS = [
    {"id": "none", "attention": "none", "kwargs": {}},
    {"id": "se-r16", "attention": "se", "kwargs": {"r": 16}},
    {"id": "gc-s16", "attention": "se-gc", "kwargs": {"group_size": 16}},
    {"id": "eca-k3", "attention": "eca", "kwargs": {"k": 3}},
    {"id": "eca-k5", "attention": "eca", "kwargs": {"k": 5}},
    {"id": "eca-ad", "attention": "eca", "kwargs": {"k": "adaptive"}},
    {"id": "ceca-k3", "attention": "ceca", "kwargs": {"k": 3}},
]
SPEC = {"name": "ablation", "description": "test", "mirrors": "Table 2", "layout": "table2", "profile": "quick",
        "seeds": 3, "baseline": "none", "backbones": ["resnet-20", "resnet-32"], "arms": ARMS,
        "data": {"dataset": "cifar10", "subset": None}, "train": {"epochs": 2}}
R20 = {"none": [90.0, 90.1, 90.1], "se-r16": [90.5, 90.9, 90.6], "gc-s16": [90.3, 90.7, 90.4],
       "eca-k3": [91.0, 91.3, 91.1], "eca-k5": [90.95, 91.25, 91.2], "eca-ad": [91.1, 91.2, 91.4]}
R32 = {"none": [91.0, 91.2, 91.1], "eca-k3": [92.0, 92.4]}  # eca-k3 seed 2 failed
LABELS = {"none": "Vanilla", "se-r16": "SE (r=16)", "gc-s16": "SE-GC (S=16)", "eca-k3": "ECA (k=3)",
          "eca-k5": "ECA (k=5)", "eca-ad": "ECA (adaptive, γ=2, β=1 -> k 3/3/5)", "ceca-k3": "C-ECA (k=3)"}


def _params(arm_id):
    arm = next(a for a in ARMS if a["id"] == arm_id)
    return {"attention": arm["attention"], **arm["kwargs"]}


def _attrs(backbone, arm, seed):
    return cell_attrs(f"{backbone}/{arm}/{seed}", arm, backbone, seed, _params(arm))


def _make_study(tmp_path, spec=SPEC, results=(("resnet-20", R20), ("resnet-32", R32)), fail=True):
    storage = f"sqlite:///{tmp_path}/s.db"
    study = optuna.create_study(storage=storage, study_name=spec["name"], direction="maximize")
    study.set_user_attr(SPEC_ATTR, spec)
    for backbone, by_arm in results:
        for arm, values in by_arm.items():
            for seed, value in enumerate(values):
                metrics = {"top1": value, "top5": value + 8.0, "loss": (100 - value) / 20,
                           "total_params": 270_000, "attention_params": 0 if arm == "none" else 40,
                           "flops": 81_000_000, "kernel_sizes": [3, 3, 5] if arm == "eca-ad" else None,
                           "device": "cpu", "wall_seconds": 1.0}
                study.add_trial(optuna.trial.create_trial(state=optuna.trial.TrialState.COMPLETE, value=value,
                                                          user_attrs={**_attrs(backbone, arm, seed), **metrics}))
    if fail:
        study.add_trial(optuna.trial.create_trial(
            state=optuna.trial.TrialState.FAIL,
            user_attrs={**_attrs("resnet-32", "eca-k3", 2), "fail_reason": "non-finite loss nan at epoch 1"}))
    loaded = optuna.load_study(study_name=spec["name"], storage=storage)
    return loaded, read_records(loaded)


def _holm(ps):
    order = np.argsort(ps)
    out, running = [0.0] * len(ps), 0.0
    for rank, i in enumerate(order):
        running = max(running, min(1.0, (len(ps) - rank) * ps[i]))
        out[i] = running
    return out


@pytest.fixture(scope="module")
def table_and_records(tmp_path_factory):
    study, records = _make_study(tmp_path_factory.mktemp("study"))
    return report.build_table(SPEC, records), records, study


def _row(table, backbone, arm):
    return next(r for r in table.rows if r.backbone == backbone and r.arm == arm)


def test_rows_match_scipy(table_and_records):
    table, _, _ = table_and_records
    assert len(table.rows) == len(ARMS) * 2
    for arm, values in R20.items():
        r = _row(table, "resnet-20", arm)
        assert r.label == LABELS[arm]
        assert (r.n, r.planned, r.failed) == (3, 3, 0)
        assert r.mean == pytest.approx(np.mean(values))
        assert r.std == pytest.approx(np.std(values, ddof=1))
        ci = sst.t.interval(0.95, 2, loc=np.mean(values), scale=sst.sem(values))
        assert (r.ci_low, r.ci_high) == pytest.approx(ci)
        assert r.top5_mean == pytest.approx(np.mean(values) + 8)
        assert r.delta == pytest.approx(np.mean(values) - np.mean(R20["none"]))
    others = [a for a in R20 if a != "none"]
    raw = [sst.ttest_rel(R20[a], R20["none"]).pvalue for a in others]
    for arm, p, p_adj in zip(others, raw, _holm(raw)):
        r = _row(table, "resnet-20", arm)
        assert r.p_raw == pytest.approx(p)
        assert r.p_value == pytest.approx(p_adj)
    assert _row(table, "resnet-20", "eca-ad").kernel_sizes == [3, 3, 5]
    assert _row(table, "resnet-20", "eca-k3").attention_params == 40


def test_best_and_tied(table_and_records):
    table, _, _ = table_and_records
    best = "eca-ad"  # highest mean on resnet-20
    assert [r.arm for r in table.rows if r.best and r.backbone == "resnet-20"] == [best]
    others = [a for a in R20 if a != best]
    adjusted = _holm([sst.ttest_rel(R20[a], R20[best]).pvalue for a in others])
    for arm, p in zip(others, adjusted):
        r = _row(table, "resnet-20", arm)
        assert r.p_vs_best == pytest.approx(p)
        assert r.tied_with_best == (p >= 0.05)
    assert _row(table, "resnet-20", "eca-k3").tied_with_best
    assert not _row(table, "resnet-20", "none").tied_with_best
    assert _row(table, "resnet-20", best).tied_with_best
    assert not _row(table, "resnet-20", "ceca-k3").tied_with_best  # no data: neither best nor tied


def test_partial_failed_and_baseline_per_backbone(table_and_records):
    table, _, _ = table_and_records
    r = _row(table, "resnet-32", "eca-k3")
    assert (r.n, r.planned, r.failed) == (2, 3, 1)
    assert r.delta == pytest.approx(np.mean([92.0 - 91.0, 92.4 - 91.2]))  # paired over seeds 0 and 1
    assert r.p_raw == pytest.approx(sst.ttest_rel([92.0, 92.4], [91.0, 91.2]).pvalue)
    assert r.p_value == pytest.approx(r.p_raw)  # the only comparison on resnet-32
    empty = _row(table, "resnet-32", "se-r16")
    assert (empty.n, empty.mean, empty.std, empty.delta, empty.p_value) == (0, None, None, None, None)
    assert _row(table, "resnet-32", "none").delta == 0.0
    assert table.failed == 1
    assert "1 failed cell" in table.caption
    assert "Partial" in table.caption and "Holm" in table.caption
    assert "cifar10" in table.caption and "cpu" in table.caption and "quick" in table.caption
    assert "2 epochs" in table.caption and "3 seeds planned" in table.caption
    assert "seeds per arm would resolve" in table.caption or "would not be resolved" in table.caption


def test_paper_column_from_reference(table_and_records):
    table, _, _ = table_and_records
    ref = report.paper_reference()
    expected = {"none": 75.20, "se-r16": 76.71, "gc-s16": 76.98, "eca-k3": 77.43,
                "eca-ad": ref["figure4"]["resnet50_adaptive"], "eca-k5": None, "ceca-k3": None}
    for arm, value in expected.items():
        assert _row(table, "resnet-20", arm).paper == value
    assert _row(table, "resnet-20", "gc-s16").paper_method == "SE-GC2"
    assert report.PAPER_COLUMN in table.caption and "not a prediction" in table.caption


def test_labels():
    assert report.arm_label({"attention": "se-gc", "groups": 16}) == "SE-GC (G=16)"
    assert report.arm_label({"attention": "eca-ns", "k": 3}) == "ECA-NS (k=3)"
    assert report.arm_label({"attention": "se-var2"}) == "SE-Var2"
    assert report.arm_label({"attention": "eca", "k": "adaptive", "gamma": 2, "beta": 1}, [3, 5, 5, 7]) == \
        "ECA (adaptive, γ=2, β=1 -> k 3/5/5/7)"
    assert report.arm_label({"attention": "eca", "k": 3, "bias": True}) == "ECA (k=3, bias)"


def test_formats_parse(table_and_records):
    table, _, _ = table_and_records
    doc = json.loads(report.render(table, "json"))
    assert {"study", "metric", "rows", "caption", "schema"} <= set(doc)
    assert doc["study"] == "ablation" and doc["metric"] == "top1"
    assert set(doc["rows"][0]) == set(report.ROW_FIELDS)
    assert {"label", "backbone", "arm", "params", "formula", "n", "planned", "mean", "std", "ci_low", "ci_high",
            "top5_mean", "delta", "p_value", "p_raw", "tied_with_best", "best", "paper", "failed",
            "attention_params", "total_params", "flops"} <= set(report.ROW_FIELDS)
    rows = list(csv.reader(io.StringIO(report.render(table, "csv"))))
    assert rows[0] == list(report.ROW_FIELDS) and len(rows) == len(table.rows) + 1
    markdown, latex = report.render(table, "markdown"), report.render(table, "latex")
    for label in LABELS.values():
        assert label in markdown
        assert report.latex_escape(label) in latex
    assert r"\toprule" in latex and r"\midrule" in latex and r"\bottomrule" in latex
    assert report.latex_escape("a_b & 50% σ") == r"a\_b \& 50\% $\sigma$"
    with pytest.raises(EcasweepError):
        report.render(table, "html")


def _rich_text(renderable, width=80):
    console = Console(width=width, record=True, color_system=None)
    console.print(renderable)
    return console.export_text()


def test_rich_at_80_columns(table_and_records):
    table, _, _ = table_and_records
    text = _rich_text(report.render(table, "rich"))
    flat = text.replace("\n", "")
    for r in table.rows:
        assert r.label in text or r.label.replace(" ", "") in flat.replace(" ", "")
        if r.mean is not None:
            assert f"{r.mean:.2f}" in text
    assert all(len(line) <= 80 for line in text.splitlines())
    assert "tied" in text and "best" in text
    wide = _rich_text(report.render(table, "rich"), width=220)
    assert "attn params" in wide  # secondary columns come back when there is room


def test_other_layouts_render(table_and_records):
    _, records, _ = table_and_records
    figure4 = report.build_table(SPEC, records, layout="figure4")
    text = _rich_text(report.render(figure4, "rich"))
    assert "ECA (k=5)" in text and "k 3/3/5" in text
    assert all(len(line) <= 80 for line in text.splitlines())
    wider = _rich_text(report.render(figure4, "rich"), width=100)  # the CI goes after the bars and paper
    assert "95% CI" in wider and all(len(line) <= 100 for line in wider.splitlines())
    row = _row(figure4, "resnet-20", "eca-k5")
    assert f"[{row.ci_low:.2f}, {row.ci_high:.2f}]" in wider
    assert "█" in _rich_text(report.render(figure4, "rich"), width=260)
    grid_spec = {**SPEC, "layout": "gamma-beta", "backbones": ["resnet-20"], "baseline": None, "arms": [
        {"id": f"g{g}b{b}", "attention": "eca", "kwargs": {"k": "adaptive", "gamma": g, "beta": b}}
        for g in (1, 2) for b in (0, 1)]}
    grid = report.build_table(grid_spec, [])
    text = _rich_text(report.render(grid, "rich"))
    assert "γ=1" in text and "β=0" in text
    search = report.build_table({**SPEC, "layout": "search"}, records)
    objectives = [r.objective for r in search.rows if r.objective is not None]
    assert objectives == sorted(objectives, reverse=True)


def test_compare_arms(table_and_records):
    _, records, _ = table_and_records
    result = report.compare_arms(SPEC, records, "eca-k3", "ECA (k=5)", backbone="resnet-20")
    ref = sst.ttest_rel(R20["eca-k3"], R20["eca-k5"])
    assert result["p_value"] == pytest.approx(ref.pvalue)
    assert (result["ci_low"], result["ci_high"]) == pytest.approx(tuple(ref.confidence_interval()))
    assert [s["diff"] for s in result["seeds"]] == pytest.approx(np.subtract(R20["eca-k3"], R20["eca-k5"]))
    assert 0 < result["p_a_beats_b"] < 1
    json.loads(report.render_comparison(result, "json"))
    assert "ECA (k=3)" in _rich_text(report.render_comparison(result, "rich"))
    # Two backbones: the study's first, as `compare --help` says.
    assert report.compare_arms(SPEC, records, "eca-k3", "eca-k5")["backbone"] == SPEC["backbones"][0]
    with pytest.raises(EcasweepError):
        report.compare_arms(SPEC, records, "eca-k3", "nope", backbone="resnet-20")


def test_bad_arguments(table_and_records):
    _, records, _ = table_and_records
    with pytest.raises(EcasweepError):
        report.build_table(SPEC, records, baseline="missing")
    with pytest.raises(EcasweepError):
        report.build_table(SPEC, records, metric="accuracy")
    loss = report.build_table(SPEC, records, metric="loss")
    assert _row(loss, "resnet-20", "eca-ad").best  # lowest loss = highest accuracy here
    assert not any(isinstance(v, float) and math.isnan(v) for r in loss.rows for v in vars(r).values())


@pytest.mark.parametrize("layout", ["table2", "figure4", "gamma-beta"])
def test_plot_png(table_and_records, tmp_path, layout):
    pytest.importorskip("matplotlib", reason="matplotlib is not installed: plots are optional (ecasweep[plot])")
    import matplotlib.image

    _, records, _ = table_and_records
    out = report.plot(SPEC, records, tmp_path / f"{layout}.png", layout=layout)
    image = matplotlib.image.imread(out)
    assert image.shape[:2] == (400, 1200)  # two backbones: two 6 x 4 inch panels at 100 dpi


def test_plot_search_uses_optuna(table_and_records, tmp_path):
    pytest.importorskip("matplotlib", reason="matplotlib is not installed: plots are optional (ecasweep[plot])")
    _, records, study = table_and_records
    spec = {**SPEC, "layout": "search"}
    with pytest.raises(EcasweepError):
        report.plot(spec, records, tmp_path / "s.png")


def test_per_seed_values_in_json_and_csv(table_and_records):
    _, records, _ = table_and_records
    table = report.build_table(SPEC, records)
    row = _row(table, "resnet-20", "eca-k3")
    assert list(row.values.values()) == pytest.approx(R20["eca-k3"])
    data = json.loads(report.render(table, "json"))
    assert next(r for r in data["rows"] if r["arm"] == "eca-k3")["values"] == row.values
    rows = list(csv.DictReader(io.StringIO(report.render(table, "csv"))))
    assert json.loads(next(r for r in rows if r["arm"] == "eca-k3" and r["backbone"] == "resnet-20")["values"]) \
        == row.values


def test_one_seed_is_untested_not_tied(table_and_records):
    _, records, _ = table_and_records
    first = [r for r in records if r.seed == 0]
    table = report.build_table({**SPEC, "seeds": 1}, first)
    on = [r for r in table.rows if r.backbone == "resnet-20" and r.n]
    assert sum(r.best for r in on) == 1
    assert all(r.untested and not r.tied_with_best for r in on if not r.best)
    markdown = report.render(table, "markdown")
    assert "| untested |" in markdown and markdown.count("| tied |") == 1  # the header's
    assert "? untested" in _rich_text(report.render(report.build_table({**SPEC, "seeds": 1, "layout": "figure4"},
                                                                       first), "rich"), width=160)
