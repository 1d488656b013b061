"""Cells as Optuna parameters, the spec as short study attributes, studies in Optuna's own tools
(importance, visualization, `optuna trials`, optuna-dashboard), `ecasweep dashboard`, and studies
written before cells had parameters."""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys
import warnings
from collections import Counter
from pathlib import Path
from wsgiref.util import setup_testing_defaults

import optuna
import optuna_dashboard
import plotly.graph_objects as go
import pytest
from rich.console import Console
from typer.testing import CliRunner

from ecasweep.cli.app import app
from ecasweep.store.params import cell_params, study_distributions
from ecasweep.report import build_table, render
from ecasweep.store.results import HASH_ATTR, SPEC_ATTR, cell_attrs, read_records
from ecasweep.spec import Cell, list_studies, load_study
from ecasweep.store.stored_spec import MAX_ATTR_LENGTH, attr_length, read_spec, spec_attrs, write_spec
from ecasweep.errors import EcasweepError
from ecasweep.sweep import study as opening
from ecasweep.sweep.study import open_study, stored_spec

from conftest import write_study

runner = CliRunner()
FACTORS = {"attention", "k", "backbone", "seed"}
#: a kernel-size-like study: none, se(r=4), eca with k 3 and adaptive on resnet-8, two seeds; gamma 1
#: makes the adaptive k 5/7/7 (with gamma 2 it is 3/3/3, the same model as k 3)
KS = '[3, "adaptive"]\ngamma = 1.0'


# ------------------------------------------------------------------------------ cells as parameters

def test_each_cell_carries_its_factors_with_one_distribution_per_name():
    spec = load_study("kernel-size")
    seen: dict[str, set] = {}
    every = [Cell(f"{b}/{a.id}/seed={s}", a, b, s) for b in spec.backbones for a in spec.arms for s in range(2)]
    for cell in every:
        params = cell_params(spec, cell)
        values = {name: value for name, (value, _) in params.items()}
        assert values["attention"] == cell.arm.attention
        assert (values["backbone"], values["seed"]) == (cell.backbone, cell.seed)
        for name, (value, distribution) in params.items():
            assert distribution._contains(distribution.to_internal_repr(value))
            seen.setdefault(name, set()).add(repr(distribution))
        expected = {"none": set(), "se": {"r"}}.get(cell.arm.attention, {"k"})
        if cell.arm.kwargs.get("k") == "adaptive":
            expected |= {"gamma", "beta"}
        assert set(values) - {"attention", "backbone", "seed"} == expected, cell.key  # conditional
    assert all(len(reprs) == 1 for reprs in seen.values())  # Optuna's rule: one distribution per name
    assert study_distributions(spec)["k"].choices == (3, 5, 7, 9, "adaptive")


def test_distributions_do_not_depend_on_the_order_of_the_study_file():
    spec = load_study("table2")
    shuffled = dataclasses.replace(spec, arms=list(reversed(spec.arms)), backbones=list(reversed(spec.backbones)))
    assert study_distributions(shuffled) == study_distributions(spec)


# --------------------------------------------------------------------------- the spec, in attributes

def test_every_builtin_spec_is_stored_in_attributes_the_dashboard_shows_whole():
    for listed in list_studies():
        for profile in ("quick", "imagenet"):
            spec = load_study(listed.name, profile).to_dict()
            attrs = spec_attrs(spec)
            assert max(attr_length(v) for v in attrs.values()) < MAX_ATTR_LENGTH
            assert read_spec(attrs) == json.loads(json.dumps(spec))


def test_a_long_section_goes_in_pieces_and_a_rewrite_never_reads_stale_pieces():
    study = optuna.create_study()
    long = {"name": "big", "arms": [{"id": f"eca(k={k})", "kwargs": {"k": k}} for k in range(1, 200, 2)]}
    write_spec(study, long)
    assert study.user_attrs["ecasweep_spec.arms"]["$pieces"] > 1
    assert max(attr_length(v) for v in study.user_attrs.values()) < MAX_ATTR_LENGTH
    assert read_spec(study.user_attrs) == long
    short = {"name": "big", "arms": [{"id": "none"}]}
    write_spec(study, short)  # the old pieces stay in the study (Optuna cannot delete attributes)
    assert read_spec(study.user_attrs) == short
    write_spec(study, long)
    assert read_spec(study.user_attrs) == long


def test_a_spec_stored_whole_by_earlier_versions_is_read():
    study = optuna.create_study()
    spec = load_study("kernel-size").to_dict()
    study.set_user_attr(SPEC_ATTR, spec)
    study.set_user_attr(HASH_ATTR, load_study("kernel-size").results_hash())  # written with it since the first
    assert read_spec(study.user_attrs) == spec
    assert stored_spec(study) == load_study("kernel-size")


def test_pieces_written_by_earlier_versions_without_a_digest_are_read():
    study = optuna.create_study()
    long = {"name": "big", "arms": [{"id": f"eca(k={k})", "kwargs": {"k": k}} for k in range(1, 200, 2)]}
    text = json.dumps(long["arms"])
    pieces = [text[i:i + 1000] for i in range(0, len(text), 1000)]
    for i, piece in enumerate(pieces):
        study.set_user_attr(f"ecasweep_spec.arms.{i}", piece)
    study.set_user_attr("ecasweep_spec.arms", {"$pieces": len(pieces)})
    study.set_user_attr("ecasweep_spec.name", "big")
    assert read_spec(study.user_attrs) == long


class _Killed(BaseException):
    """What a kill is to the code that was writing: it stops between two writes."""


def _killed_after(study: optuna.Study, writes: int, monkeypatch) -> None:
    """``study`` dies at its ``writes``-th next attribute write, before it lands."""
    real, count = study.set_user_attr, iter(range(writes))

    def set_user_attr(key, value):
        if next(count, None) is None:
            raise _Killed
        real(key, value)
    monkeypatch.setattr(study, "set_user_attr", set_user_attr)


def test_a_section_rewrite_killed_between_its_pieces_leaves_the_old_section_whole(monkeypatch):
    study = optuna.create_study()
    old = {"name": "big", "arms": [{"id": f"eca(k={k})", "kwargs": {"k": k}} for k in range(1, 200, 2)]}
    new = {"name": "big", "arms": [{"id": f"eca-ns(k={k})", "kwargs": {"k": k}} for k in range(1, 200, 2)]}
    write_spec(study, old)
    pieces = study.user_attrs["ecasweep_spec.arms"]["$pieces"]
    for writes in range(pieces + 1):  # killed before the 1st, 2nd, ... new piece and before the section's count
        _killed_after(study, writes, monkeypatch)
        with pytest.raises(_Killed):
            write_spec(study, new)
        monkeypatch.undo()
        assert read_spec(study.user_attrs) == old  # whole, never a mix of old and new pieces
    write_spec(study, new)
    assert read_spec(study.user_attrs) == new


@pytest.mark.parametrize("writes", [0, 1, 3, 6])
def test_a_study_whose_creator_was_killed_mid_spec_is_named_so_and_created_again(writes, tmp_path, monkeypatch):
    """A creator killed while writing the spec leaves part of it: a reader says the creation was
    interrupted (one line, no traceback), and opening the study again writes it whole."""
    storage = f"sqlite:///{tmp_path / 'k.db'}"
    spec = load_study("kernel-size")
    study = optuna.create_study(storage=storage, study_name="kernel-size", direction="maximize")
    _killed_after(study, writes, monkeypatch)
    with pytest.raises(_Killed):
        opening._check_or_write_spec(study, spec, "kernel-size", storage)
    monkeypatch.undo()
    loaded = optuna.load_study(study_name="kernel-size", storage=storage)
    if writes:
        with pytest.raises(EcasweepError, match="interrupted while it was being created"):
            stored_spec(loaded)
        shown = runner.invoke(app, ["status", "kernel-size", "--storage", storage])
        assert shown.exit_code == 2 and "interrupted while it was being created" in shown.output, shown.output
    reopened = open_study(spec, optuna.storages.RDBStorage(storage), url=storage)
    assert stored_spec(reopened) == spec and reopened.user_attrs[HASH_ATTR] == spec.results_hash()


# ----------------------------------------------------------------- a finished study in Optuna's tools

@pytest.fixture(scope="module")
def finished(tmp_path_factory) -> tuple[str, str, Path]:
    """A finished kernel-size-like grid study on synthetic data (8 tiny cells): storage, name, file."""
    tmp = tmp_path_factory.mktemp("finished")
    study_file = write_study(tmp, name="ks", seeds=2, size=64, epochs=1, ks=KS)
    storage = f"sqlite:///{tmp / 'ks.db'}"
    result = runner.invoke(app, ["run", str(study_file), "--storage", storage, "--workers", "1",
                                 "--no-table", "--checkpoint-dir", str(tmp / "ckpt")])
    assert result.exit_code == 0, result.output
    return storage, "ks", study_file


def _study(finished) -> optuna.Study:
    storage, name, _ = finished
    return optuna.load_study(study_name=name, storage=storage)


def test_a_finished_study_has_parameters_and_short_study_attributes(finished):
    study = _study(finished)
    assert len(study.trials) == 8 and all(t.state.name == "COMPLETE" for t in study.trials)
    for trial in study.trials:
        assert {"attention", "backbone", "seed"} <= set(trial.params)
        assert trial.params["attention"] == trial.user_attrs["arm_params"]["attention"]
        assert trial.params.get("k") == trial.user_attrs["arm_params"].get("k")
        assert trial.value == trial.user_attrs["top1"]
    adaptive = [t for t in study.trials if t.params.get("k") == "adaptive"]
    assert len(adaptive) == 2 and all(t.params["gamma"] == 1.0 and t.params["beta"] == 1.0 for t in adaptive)
    assert max(attr_length(v) for v in study.user_attrs.values()) < MAX_ATTR_LENGTH
    assert SPEC_ATTR not in study.user_attrs and HASH_ATTR in study.user_attrs
    assert stored_spec(study).backbones == ["resnet-8"]


def test_optuna_importance_and_visualization_work_on_the_factors(finished):
    study = _study(finished)
    importances = optuna.importance.get_param_importances(study)
    assert FACTORS <= set(importances) and sum(importances.values()) == pytest.approx(1.0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # experimental-feature warnings of some plots
        slice_ = optuna.visualization.plot_slice(study, params=["attention", "k", "backbone"])
        figures = [slice_, optuna.visualization.plot_contour(study, params=["attention", "seed"]),
                   optuna.visualization.plot_rank(study, params=["attention", "seed"]),
                   optuna.visualization.plot_parallel_coordinate(study)]
    for figure in figures:
        assert isinstance(figure, go.Figure) and figure.data
    axes = {slice_.layout[axis].title.text: axis.replace("axis", "") for axis in ("xaxis", "xaxis2", "xaxis3")}
    assert set(axes) == {"attention", "k", "backbone"}
    assert {str(x).strip("'") for d in slice_.data if d.xaxis == axes["k"] for x in d.x} == {"3", "adaptive"}


def test_optuna_trials_cli_shows_the_parameters(finished):
    storage, name, _ = finished
    optuna_cli = Path(sys.executable).with_name("optuna")
    out = subprocess.run([str(optuna_cli), "trials", "--study-name", name, "--storage", storage, "-f", "json"],
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    trials = json.loads(out.stdout)
    assert len(trials) == 8 and all({"attention", "backbone", "seed"} <= set(t["params"]) for t in trials)


def _get(app_, path: str) -> tuple[str, dict]:
    environ = {"PATH_INFO": path, "REQUEST_METHOD": "GET"}
    setup_testing_defaults(environ)
    status = {}
    body = b"".join(app_(environ, lambda s, headers, exc_info=None: status.setdefault("line", s)))
    return status["line"], json.loads(body)


def test_optuna_dashboard_answers_importances_and_shows_every_study_attribute_whole(finished):
    study = _study(finished)
    dashboard = optuna_dashboard.wsgi(optuna.storages.RDBStorage(finished[0]))
    status, body = _get(dashboard, f"/api/studies/{study._study_id}/param_importances")
    assert status.startswith("200"), body
    assert FACTORS <= {p["name"] for p in body["param_importances"][0]}
    status, detail = _get(dashboard, f"/api/studies/{study._study_id}")
    assert status.startswith("200")
    shown = {a["key"]: a["value"] for a in detail["user_attrs"]}
    assert set(shown) == set(study.user_attrs)
    for key, value in shown.items():  # none cut: each reads back as stored
        assert value == study.user_attrs[key] or json.loads(value) == study.user_attrs[key]


def test_figure4_labels_stay_on_one_line_at_80_columns(finished):
    study = _study(finished)
    table = build_table(stored_spec(study).to_dict(), read_records(study), layout="figure4")
    console = Console(width=80, record=True, color_system=None)
    console.print(render(table, "rich"))
    lines = console.export_text().splitlines()
    assert max(len(line) for line in lines) <= 80
    label = "ECA (adaptive, γ=1, β=1) -> k 5/7/7"  # as long as the paper's γ=2 arm's label
    assert sum(label in line for line in lines) == 1  # never wrapped


# --------------------------------------------------------------------------------- ecasweep dashboard

def test_dashboard_serves_the_storage_on_localhost(finished, monkeypatch):
    storage, name, _ = finished
    calls = []
    monkeypatch.setattr(optuna_dashboard, "run_server", lambda *a, **kw: calls.append((a, kw)))
    result = runner.invoke(app, ["dashboard", name, "--storage", storage, "--port", "8123"])
    assert result.exit_code == 0, result.output
    (args, kwargs), = calls
    assert kwargs == {"host": "127.0.0.1", "port": 8123} and name in optuna.get_all_study_names(args[0])
    assert "http://127.0.0.1:8123/dashboard/studies/" in result.output


def test_dashboard_errors_are_one_line(finished, monkeypatch):
    storage, name, _ = finished
    missing = runner.invoke(app, ["dashboard", "nope", "--storage", storage])
    assert missing.exit_code == 2 and "no study named 'nope'" in missing.output and name in missing.output
    monkeypatch.setitem(sys.modules, "optuna_dashboard", None)  # as if not installed
    absent = runner.invoke(app, ["dashboard", name, "--storage", storage])
    assert absent.exit_code == 2, absent.output
    assert "pip install 'ecasweep[dashboard]'" in absent.output and len(absent.output.strip().splitlines()) == 1


# ----------------------------------------------------------------- a database written before params

def _old_study(finished, storage: str) -> optuna.Study:
    """The finished study's seed-0 trials as earlier versions wrote them (no parameters, the spec
    whole in one attribute), and one seed-1 cell enqueued the old way."""
    source = _study(finished)
    spec = {**read_spec(source.user_attrs), "seeds": 1}
    old = optuna.create_study(storage=storage, study_name="old", direction="maximize")
    old.set_user_attr(SPEC_ATTR, spec)
    old.set_user_attr(HASH_ATTR, source.user_attrs[HASH_ATTR])
    for t in source.trials:
        if t.user_attrs["seed"] == 0:
            old.add_trial(optuna.trial.create_trial(state=t.state, value=t.value, user_attrs=t.user_attrs))
    a = source.trials[1].user_attrs
    old.enqueue_trial({}, user_attrs=cell_attrs(a["cell"].replace("seed=0", "seed=1"), a["arm"], a["backbone"], 1,
                                                a["arm_params"]))
    return old


def test_a_database_written_before_params_works_with_status_table_and_run(finished, tmp_path):
    storage = f"sqlite:///{tmp_path / 'old.db'}"
    old = _old_study(finished, storage)
    assert not any(t.params for t in old.trials) and set(old.user_attrs) == {SPEC_ATTR, HASH_ATTR}

    status = runner.invoke(app, ["status", "old", "--storage", storage, "--json"])
    assert status.exit_code == 0, status.output
    assert json.loads(status.output)["counts"] == {"done": 4}
    table = runner.invoke(app, ["table", "old", "--storage", storage, "--format", "csv"])
    assert table.exit_code == 0 and len(table.output.strip().splitlines()) == 1 + 4, table.output

    _, _, study_file = finished
    resumed = runner.invoke(app, ["run", str(study_file), "--name", "old", "--storage", storage,
                                  "--set", "seeds=2", "--workers", "1", "--no-table",
                                  "--checkpoint-dir", str(tmp_path / "ckpt")])
    assert resumed.exit_code == 0, resumed.output
    study = optuna.load_study(study_name="old", storage=storage)
    done = Counter(r.cell for r in read_records(study) if r.complete)
    assert len(done) == 8 and set(done.values()) == {1}
    assert stored_spec(study).seeds == 2 and study.user_attrs[SPEC_ATTR]["seeds"] == 2  # both layouts agree
    new = [t for t in study.trials if t.number >= 5]
    assert len(new) == 3 and all({"attention", "backbone", "seed"} <= set(t.params) for t in new)
    assert not study.trials[4].params  # the cell enqueued the old way ran without parameters
    status = runner.invoke(app, ["status", "old", "--storage", storage, "--json"])
    assert json.loads(status.output)["counts"] == {"done": 8}
