"""The trial engine: learning, determinism, resume after a kill, NaN handling, config errors."""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys
import textwrap

import pytest

from ecasweep.engine.config import DataConfig, ModelConfig, RuntimeConfig, TrainConfig, TrialConfig
from ecasweep.errors import ConfigError, NonFiniteLossError
from ecasweep.engine.train import lr_multiplier, make_optimizer, run_trial


def synthetic_config(tmp_path=None, epochs=3, lr=0.05, seed=0, attention="eca", **runtime) -> TrialConfig:
    return TrialConfig(
        model=ModelConfig("resnet-8", attention, {"k": 3} if attention == "eca" else {}),
        data=DataConfig("synthetic", synthetic_size=512),
        train=TrainConfig(epochs=epochs, batch_size=64, lr=lr, eval_batch_size=256),
        seed=seed,
        runtime=RuntimeConfig(device="cpu", threads=1, **runtime),
    )


def test_learns_synthetic_data_well_above_chance():
    result = run_trial(synthetic_config(epochs=3))
    losses = [h["train_loss"] for h in result.history]
    assert losses[-1] < losses[0]
    assert result.top1 > 50.0  # 10 classes: chance is 10%
    assert 0 <= result.top1 <= result.top5 <= 100
    assert result.epochs == 3 and len(result.epoch_seconds) == 3
    assert result.images_per_second > 0 and result.wall_seconds > 0
    assert result.attention_params == 3 * 3  # one k=3 module per basic block, 3 blocks in resnet-8
    assert result.device == "cpu"


def test_same_seed_gives_identical_metrics():
    first, second = run_trial(synthetic_config(epochs=2)), run_trial(synthetic_config(epochs=2))
    assert (first.top1, first.top5, first.loss) == (second.top1, second.top5, second.loss)
    assert [h["train_loss"] for h in first.history] == [h["train_loss"] for h in second.history]


def test_another_seed_gives_another_run():
    a, b = run_trial(synthetic_config(epochs=1, seed=0)), run_trial(synthetic_config(epochs=1, seed=1))
    assert a.history[0]["train_loss"] != b.history[0]["train_loss"]


def test_killed_trial_resumes_from_checkpoint_with_identical_metrics(tmp_path):
    ckpt = tmp_path / "ckpt"
    config = synthetic_config(epochs=3, checkpoint_dir=str(ckpt))
    script = textwrap.dedent(f"""
        import json, os, signal
        from ecasweep.engine.config import TrialConfig
        from ecasweep.engine.train import run_trial
        config = TrialConfig.from_dict(json.loads({json.dumps(config.to_dict())!r}))
        def stop(epoch, metrics):
            if epoch == 1:
                os.kill(os.getpid(), signal.SIGKILL)
        run_trial(config, on_epoch=stop)
    """)
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300)
    assert proc.returncode == -9, proc.stderr
    assert sorted(p.name for p in (ckpt / config.identity()).glob("epoch-*.pt")) == ["epoch-1.pt"]

    resumed = run_trial(config)
    assert resumed.resumed_from_epoch == 1
    assert not (ckpt / config.identity()).exists()  # removed once the trial completed
    uninterrupted = run_trial(synthetic_config(epochs=3))
    assert (resumed.top1, resumed.top5, resumed.loss) == (uninterrupted.top1, uninterrupted.top5, uninterrupted.loss)
    assert [h["train_loss"] for h in resumed.history] == [h["train_loss"] for h in uninterrupted.history]


def test_torn_checkpoint_falls_back_to_the_previous_one(tmp_path):
    config = synthetic_config(epochs=3, checkpoint_dir=str(tmp_path), keep_checkpoints=True)
    full = run_trial(config)
    directory = tmp_path / config.identity()
    assert sorted(p.name for p in directory.glob("*.pt")) == ["epoch-2.pt", "epoch-3.pt"]
    (directory / "epoch-3.pt").write_bytes((directory / "epoch-3.pt").read_bytes()[:1000])  # torn
    again = run_trial(config)
    assert again.resumed_from_epoch == 2
    assert (again.top1, again.loss) == (full.top1, full.loss)


def test_non_finite_loss_raises_with_epoch_and_step():
    with pytest.raises(NonFiniteLossError) as info:
        run_trial(synthetic_config(epochs=2, lr=1e6))
    assert info.value.epoch == 1 and info.value.step >= 1
    assert "epoch 1" in str(info.value)


@pytest.mark.parametrize("build, field", [
    (lambda: TrainConfig(epochs=0), "train.epochs"),
    (lambda: TrainConfig(lr=-1.0), "train.lr"),
    (lambda: TrainConfig(schedule="linear-ish"), "train.schedule"),
    (lambda: TrainConfig(label_smoothing=1.5), "train.label_smoothing"),
    (lambda: DataConfig("mnist-ish"), "data.dataset"),
    (lambda: DataConfig(subset=0), "data.subset"),
    (lambda: RuntimeConfig(amp="fp8"), "runtime.amp"),
    (lambda: TrialConfig(seed=-1), "seed"),
    (lambda: TrialConfig.from_dict({"train": {"epochz": 3}}), "train.epochz"),
])
def test_bad_config_values_name_the_field(build, field):
    with pytest.raises(ConfigError) as info:
        build()
    assert info.value.field == field
    assert str(info.value).startswith(field)


def test_config_round_trips_and_identity_ignores_runtime(tmp_path):
    config = synthetic_config(checkpoint_dir=str(tmp_path))
    assert TrialConfig.from_dict(config.to_dict()) == config
    moved = dataclasses.replace(config, runtime=RuntimeConfig(device="cpu", threads=2))
    assert moved.identity() == config.identity()
    assert dataclasses.replace(config, seed=1).identity() != config.identity()


@pytest.mark.parametrize("nesterov", [False, True])
def test_fused_sgd_takes_the_same_steps_as_the_reference_loop(nesterov):
    import torch

    from ecasweep.models.backbones import build_model

    train = TrainConfig(lr=0.1, momentum=0.9, nesterov=nesterov, weight_decay=5e-4)
    models = []
    for _ in range(2):
        torch.manual_seed(0)
        models.append(build_model("resnet-8", "eca", num_classes=10, in_channels=1, k=3).double())
    fused = make_optimizer(models[0], train, torch.device("cpu"))
    loop = torch.optim.SGD(models[1].parameters(), lr=0.1, momentum=0.9, nesterov=nesterov, weight_decay=5e-4,
                           foreach=False)
    assert fused.defaults["fused"] is True
    x = torch.randn(4, 1, 12, 12, dtype=torch.float64)
    for _ in range(3):
        for model, opt in ((models[0], fused), (models[1], loop)):
            opt.zero_grad()
            model(x).square().mean().backward()
            opt.step()
    for a, b in zip(models[0].parameters(), models[1].parameters()):
        torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("schedule", ["step", "cosine", "onecycle", "exponential", "constant"])
def test_schedules_start_high_and_never_go_negative(schedule):
    train = TrainConfig(epochs=90, schedule=schedule, step_size=30, warmup_epochs=0)
    f = lr_multiplier(train, steps_per_epoch=10)
    values = [f(s) for s in range(900)]
    assert all(v >= 0 for v in values)
    assert max(values) == pytest.approx(1.0, abs=0.02)
    if schedule == "step":  # the paper's: /10 every 30 epochs
        assert (f(0), f(300), f(600)) == pytest.approx((1.0, 0.1, 0.01))
    if schedule == "cosine":
        assert f(899) < 0.001


@pytest.mark.parametrize("warmup_epochs", [0, 1])
def test_no_schedule_spends_a_step_at_lr_zero(warmup_epochs):
    for schedule in ("step", "cosine", "onecycle", "exponential", "constant"):
        f = lr_multiplier(TrainConfig(epochs=4, schedule=schedule, warmup_epochs=warmup_epochs), steps_per_epoch=25)
        assert min(f(s) for s in range(100)) > 0, schedule
    onecycle = lr_multiplier(TrainConfig(epochs=4, schedule="onecycle"), steps_per_epoch=25)
    assert onecycle(0) == pytest.approx(1 / 15) and onecycle(14) == 1.0  # the peak at 15% of 100 steps


def test_warmup_ramps_linearly():
    f = lr_multiplier(TrainConfig(epochs=10, schedule="constant", warmup_epochs=1), steps_per_epoch=100)
    assert f(0) == pytest.approx(0.01) and f(49) == pytest.approx(0.5) and f(500) == 1.0


@pytest.mark.slow
def test_real_fashion_mnist_resnet20_eca_one_epoch_beats_70(fashion_mnist_dir):
    config = TrialConfig(ModelConfig("resnet-20", "eca", {"k": 3}),
                         DataConfig("fashion-mnist", data_dir=str(fashion_mnist_dir), subset=5000, augment=False),
                         TrainConfig(epochs=1, batch_size=32, lr=0.15, nesterov=True, schedule="onecycle",
                                     eval_batch_size=128), 0,
                         RuntimeConfig(device="cpu"))
    result = run_trial(config)
    assert result.top1 > 70.0, result.top1
