"""`ecasweep train` reruns one cell of a study exactly: the command `show --cell` prints gives the
cell's own numbers, and every recipe field a study sets is an option of `train`."""

from __future__ import annotations

import dataclasses
import json
import shlex

import optuna
import pytest
from typer.testing import CliRunner

from ecasweep.sweep import slots
from ecasweep.cli.app import app
from ecasweep.engine.config import DataConfig, ModelConfig, RuntimeConfig, TrainConfig, TrialConfig
from ecasweep.engine.command import train_args

from conftest import write_study

runner = CliRunner()


def test_show_cell_prints_a_train_command_with_the_cells_result(tmp_path, monkeypatch):
    monkeypatch.setattr(slots, "cpu_count", lambda: 1)  # one single-threaded CPU worker, in this process
    path = write_study(tmp_path, name="rerun", seeds=1, size=256, epochs=1, ks="[3]")
    storage = f"sqlite:///{tmp_path / 'rerun.db'}"
    ran = runner.invoke(app, ["run", str(path), "--storage", storage, "--devices", "cpu", "--no-table",
                              "--set", "data.augment=true", "--set", "train.nesterov=true",
                              "--set", "train.schedule=onecycle", "--set", "train.eval_batch_size=100"])
    assert ran.exit_code == 0, ran.output
    key = "resnet-8/eca(k=3)/seed=0"
    shown = runner.invoke(app, ["show", str(path), "--cell", key, "--set", "data.augment=true",
                                "--set", "train.nesterov=true", "--set", "train.schedule=onecycle",
                                "--set", "train.eval_batch_size=100"])
    assert shown.exit_code == 0, shown.output
    words = shlex.split(shown.stdout.splitlines()[0])
    assert words[:2] == ["ecasweep", "train"] and "--nesterov" in words and "--augment" in words
    trained = runner.invoke(app, [*words[1:], "--json", "--quiet"])
    assert trained.exit_code == 0, trained.output
    metrics = json.loads(trained.stdout)
    stored = next(t for t in optuna.load_study(study_name="rerun", storage=storage).trials
                  if t.user_attrs.get("cell") == key and t.state.name == "COMPLETE")
    for name in ("top1", "top5", "loss", "total_params"):
        assert metrics[name] == stored.user_attrs[name], name


def test_every_recipe_field_is_a_train_option_under_its_study_name():
    # Each field set away from its default: the command must carry it (a missing option is exit 2).
    config = TrialConfig(ModelConfig("resnet-8", "ceca", {"k": "adaptive", "gamma": 3.0, "beta": 0.0, "min_k": 3},
                                     width=8),
                         DataConfig("synthetic", subset=200, val_split=40, augment=False, synthetic_size=320,
                                    num_workers=0),
                         TrainConfig(epochs=1, batch_size=50, lr=0.03, momentum=0.8, nesterov=True,
                                     weight_decay=1e-3, label_smoothing=0.1, schedule="step", step_size=2,
                                     step_gamma=0.5, warmup_epochs=0.5, eval_every=1, eval_batch_size=70),
                         seed=3, runtime=RuntimeConfig(device="cpu", threads=1))
    words = train_args(config)
    for f in (*dataclasses.fields(DataConfig), *dataclasses.fields(TrainConfig)):
        if f.name != "data_dir":
            option = f.name.replace("_", "-")
            assert f"--{option}" in words or f"--no-{option}" in words, f.name
    result = runner.invoke(app, ["train", *train_args(config, "cpu", 1), "--json", "--quiet"])
    assert result.exit_code == 0, result.output
    metrics = json.loads(result.stdout)
    assert metrics["identity"] == config.identity()  # the same model, data, recipe and seed


@pytest.mark.parametrize("args, needle", [
    (["show", "kernel-size", "--cell", "resnet-8/eca(k=3)/seed=7"], "did you mean 'resnet-8/eca(k=3)/seed=1'"),
    (["show", "search", "--cell", "x"], "search study"),
])
def test_show_cell_refuses_an_unknown_cell(args, needle):
    result = runner.invoke(app, args)
    assert result.exit_code == 2 and needle in result.output, result.output
