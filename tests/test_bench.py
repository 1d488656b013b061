"""``ecasweep bench``: every benchmark runs (--quick) and its output is well-formed; nothing is timed."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from ecasweep.bench import (BENCHMARKS, bench_engine, bench_models, bench_modules, paper_speeds, quick_settings,
                            ratios, render, time_pair)
from ecasweep.cli.app import app

runner = CliRunner()
REPO = Path(__file__).resolve().parents[1]


def _positive(x) -> bool:
    return isinstance(x, (int, float)) and math.isfinite(x) and x > 0


def _spread_ok(r: dict) -> bool:
    return set(r) == {"median", "q1", "q3", "min", "max"} and r["min"] <= r["q1"] <= r["median"] <= r["q3"] <= r["max"]


def test_time_pair_reports_a_positive_ratio_with_its_spread():
    r = time_pair(lambda: sum(range(200)), lambda: sum(range(400)), repeats=3, warmup=1, number=5)
    assert _spread_ok(r["ratio"]) and _positive(r["ratio"]["median"])
    assert r["repeats"] == 3 and r["number"] == 5


def test_modules_quick():
    r = bench_modules("cpu", **quick_settings()["modules"])
    assert {row["layout"] for row in r["eca"]} == {"nchw", "channels_last"}
    for row in r["eca"]:
        assert _spread_ok(row["ratio"]) and _positive(row["ratio"]["median"])
        assert _positive(row["ref_ms"]) and _positive(row["ours_ms"])
    assert all(_positive(ms) for row in r["variants"] for ms in row["ms"].values())
    assert "none" not in r["variants"][0]["ms"] and "eca" in r["variants"][0]["ms"]


def test_models_quick_has_overheads_against_none_and_the_papers_figures():
    r = bench_models(device="cpu", **quick_settings()["models"])
    rows = {row["attention"]: row for row in r["rows"]}
    assert list(rows)[0] == "none" and rows["none"]["train_overhead"] is None
    for name in ("se", "eca"):
        assert _spread_ok(rows[name]["train_overhead"]) and _spread_ok(rows[name]["infer_overhead"])
        assert rows[name]["train_overhead"]["median"] > -1
    assert all(_positive(row[key]) for row in rows.values()
               for key in ("params", "flops", "train_images_per_s", "infer_images_per_s"))
    assert rows["eca"]["attention_params"] == 3 * 3  # k = 3 in each of resnet-8's 3 blocks
    assert r["paper_backbone"] == "resnet-50" and set(r["paper"]) == {"none", "se", "eca"}


def test_paper_speeds_are_table_3():
    source, paper = paper_speeds("resnet-101")
    assert source == "resnet-101" and paper["eca"]["train_fps"] == 380
    assert paper["none"]["train_overhead"] == 0 and paper["se"]["train_overhead"] > 0


def test_engine_quick_on_synthetic_data_gives_a_notice(tmp_path, monkeypatch):
    monkeypatch.setattr("ecasweep.engine.data.DEBIAN_FASHION_MNIST", str(tmp_path / "none"))
    monkeypatch.setattr("ecasweep.engine.data._download", lambda cls, root: "offline in this test")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.delenv("ECASWEEP_DATA", raising=False)
    r = bench_engine("cpu", **quick_settings()["engine"])
    assert r["dataset"] == "synthetic" and "synthetic" in r["notice"]
    assert _positive(r["engine"]["images_per_s"]) and _positive(r["torchvision"]["images_per_s"])
    assert _spread_ok(r["ratio"]) and _positive(r["ratio"]["median"])
    assert 0 <= r["engine"]["top1"] <= 100 and 0 <= r["torchvision"]["top1"] <= 100


@pytest.mark.slow
def test_cli_bench_all_quick_json():
    result = runner.invoke(app, ["bench", "--quick", "--json", "--device", "cpu"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    assert set(data) == {*BENCHMARKS, "ratios"}
    assert data["ratios"] and all(_positive(v) or "overhead" in k for k, v in data["ratios"].items())
    sweep = data["sweep"]
    assert sweep["workers"] == 2 and sweep["one"]["trials"] == sweep["many"]["trials"] == sweep["cells"] == 3
    assert _positive(sweep["ratio"]["median"]) and _positive(sweep["one"]["trials_per_hour"])
    assert _spread_ok(sweep["steady_ratio"]) and _positive(sweep["steady_ratio"]["median"])
    for run in (sweep["one"], sweep["many"]):
        # steady state leaves out start-up and the tail, so it is never below the whole run's rate
        assert run["steady_trials_per_hour"] >= 0.99 * run["trials_per_hour"]
        assert 0 <= run["startup_s"] < run["elapsed_s"]
    assert sweep["one"]["outside_training_per_trial_s"] >= 0
    assert ratios(data) == data["ratios"]


def test_cli_bench_modules_renders_a_table():
    result = runner.invoke(app, ["bench", "modules", "--quick", "--device", "cpu"])
    assert result.exit_code == 0, result.output
    assert "reference / ours" in result.output and "eca ref/ours" in result.output


def test_render_accepts_every_benchmark_shape():
    from rich.console import Console

    console = Console(record=True, width=200)
    render({"modules": bench_modules("cpu", **quick_settings()["modules"])}, console)
    assert "8x16x8x8" in console.export_text()


def test_unknown_device_is_one_line_error():
    result = runner.invoke(app, ["bench", "modules", "--quick", "--device", "tpu"])
    assert result.exit_code == 2


@pytest.mark.slow
def test_standalone_engine_script_runs(tmp_path):
    out = tmp_path / "engine.json"
    proc = subprocess.run([sys.executable, str(REPO / "benchmarks" / "bench_engine.py"), "--quick", "--device",
                           "cpu", "--json", str(out)], capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr
    assert _positive(json.loads(out.read_text())["ratio"]["median"])
