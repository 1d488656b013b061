"""``ecasweep train``: one trial from the command line, outside any study."""

from __future__ import annotations

from typing import Any, Optional

import typer
from rich.table import Table

from ..engine.config import DataConfig, TrainConfig
from ..errors import EcasweepError

from .common import (app, console, err, EXIT_FAILURES, _user_errors, _print_json, _default, _model_errors, _TIMM_OUT_OF_SCOPE)


_DATA, _TRAIN = DataConfig(), TrainConfig()


@app.command()
def train(
    backbone: str = typer.Option("resnet-20", help="Backbone, e.g. resnet-20, resnet-50, mobilenet-v2."),
    attention: str = typer.Option("eca", help="Attention variant: none, se, se-var1/2/3, se-gc, eca-ns, eca, ceca; "
                                  "with the timm extra (pip install 'ecasweep\\[timm]') also timm's cbam, lcbam, "
                                  "ge-theta-minus, ge-theta, ge-theta-plus, gc, gca, ese, nl. " + _TIMM_OUT_OF_SCOPE),
    k: Optional[str] = typer.Option(None, help="ECA kernel size: odd int, 'adaptive', or per stage '3,5,5,7'."),
    gamma: Optional[float] = typer.Option(None, help="Adaptive k: gamma (default 2)."),
    beta: Optional[float] = typer.Option(None, help="Adaptive k: beta (default 1)."),
    min_k: Optional[int] = typer.Option(None, help="Adaptive k: smallest k (default 1)."),
    r: Optional[int] = typer.Option(None, help="SE reduction ratio (default 16)."),
    groups: Optional[int] = typer.Option(None, help="SE-GC: number of groups."),
    group_size: Optional[int] = typer.Option(None, help="SE-GC: channels per group."),
    bias: Optional[bool] = typer.Option(None, "--bias/--no-bias", help="Bias in the attention's layers."),
    round_to: Optional[int] = typer.Option(None, help="SE: round the hidden width to a multiple of this."),
    spatial_k: Optional[int] = typer.Option(None, help="CBAM: kernel size of the spatial gate (default 7)."),
    extent: Optional[int] = typer.Option(None, help="Gather-Excite: gather extent, 0 (global) or a power of two."),
    kwarg: Optional[list[str]] = typer.Option(None, "--kwarg", help="NAME=VALUE: a keyword argument of a user's "
                                              "attention module (--attention my_attn.py:MyAttention), the value as "
                                              "JSON; repeat for several."),
    width: Optional[int] = typer.Option(None, help="Base width of CIFAR-style ResNets (default 16)."),
    dataset: str = typer.Option(_DATA.dataset, help="fashion-mnist, cifar10, cifar100, imagenet, imagefolder, synthetic."),
    data_dir: Optional[str] = typer.Option(None, "--data-dir", help="Where the dataset is; it must hold it "
                                           "\\[default: $ECASWEEP_DATA, Debian's package, the download cache]."),
    subset: Optional[int] = typer.Option(None, help="Training images kept (stratified) \\[default: all]."),
    val_split: int = typer.Option(_DATA.val_split, help="Training images held out for validation."),
    augment: bool = typer.Option(_DATA.augment, "--augment/--no-augment", help="Random crop and flip."),
    synthetic_size: int = typer.Option(_DATA.synthetic_size, help="Training images of the synthetic dataset."),
    num_workers: int = typer.Option(_DATA.num_workers, help="DataLoader workers (folder datasets only)."),
    epochs: int = typer.Option(2, help="Epochs."),
    batch_size: Optional[int] = typer.Option(None, help="Batch size." + _default(_TRAIN.batch_size)),
    lr: Optional[float] = typer.Option(None, help="Peak learning rate." + _default(_TRAIN.lr)),
    momentum: Optional[float] = typer.Option(None, help="SGD momentum." + _default(_TRAIN.momentum)),
    nesterov: Optional[bool] = typer.Option(None, "--nesterov/--no-nesterov", help="Nesterov momentum."
                                            + _default("no-nesterov")),
    weight_decay: Optional[float] = typer.Option(None, help="Weight decay." + _default(_TRAIN.weight_decay)),
    label_smoothing: Optional[float] = typer.Option(None, help="Label smoothing." + _default(_TRAIN.label_smoothing)),
    schedule: Optional[str] = typer.Option(None, help="step, cosine, onecycle, exponential, constant."
                                           + _default(_TRAIN.schedule)),
    step_size: Optional[int] = typer.Option(None, help="step: epochs between decays." + _default(_TRAIN.step_size)),
    step_gamma: Optional[float] = typer.Option(None, help="step, exponential: decay factor." + _default(_TRAIN.step_gamma)),
    warmup_epochs: Optional[float] = typer.Option(None, help="Linear warm-up epochs." + _default(_TRAIN.warmup_epochs)),
    eval_every: Optional[int] = typer.Option(None, help="Evaluate every N epochs (0: at the end only)."
                                             + _default(_TRAIN.eval_every)),
    eval_batch_size: Optional[int] = typer.Option(None, help="Evaluation batch size." + _default(_TRAIN.eval_batch_size)),
    recipe: Optional[str] = typer.Option(None, help="A named recipe (imagenet-resnet, imagenet-mobilenetv2); "
                                                    "the options above override its fields."),
    seed: int = typer.Option(0, help="Seed: initialisation, data order, subset, augmentation."),
    device: str = typer.Option("auto", help="cpu, cuda, cuda:N, mps or auto."),
    threads: Optional[int] = typer.Option(None, help="CPU threads \\[default: PyTorch's]."),
    amp: str = typer.Option("auto", help="Autocast: auto (bf16 on GPU), bf16, fp16, off."),
    compile: bool = typer.Option(False, "--compile", help="torch.compile the model."),
    checkpoint_dir: Optional[str] = typer.Option(None, help="Checkpoint every epoch here; resume if one exists."),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bar."),
) -> None:
    """Train one model and print its metrics. Every field a study sets with --set train.* or data.*
    is an option of the same name; `ecasweep show STUDY --cell ID` prints the command for one cell.

    Example: [bold]ecasweep train --backbone resnet-20 --attention eca --k 3 --subset 5000 --epochs 2[/]
    """
    from ..engine.config import RuntimeConfig

    resume = "; run the same command to resume from the last checkpoint" if checkpoint_dir else ""
    with _user_errors(interrupted=f"[yellow]interrupted[/]{resume}"):
        from ..errors import NonFiniteLossError
        from ..engine.train import run_trial

        from ..engine.command import parse_kwargs, trial_config

        config = trial_config(
            backbone, attention,
            dict(k=_parse_k(k), gamma=gamma, beta=beta, min_k=min_k, r=r, groups=groups, group_size=group_size,
                 bias=bias, round_to=round_to, spatial_k=spatial_k, extent=extent, **parse_kwargs(kwarg)), width,
            DataConfig(dataset, data_dir, subset, val_split, augment, synthetic_size, num_workers),
            recipe, None if recipe and epochs == 2 else epochs,  # --epochs' own default leaves a recipe's
            dict(batch_size=batch_size, lr=lr, momentum=momentum, nesterov=nesterov, weight_decay=weight_decay,
                 label_smoothing=label_smoothing, schedule=schedule, step_size=step_size, step_gamma=step_gamma,
                 warmup_epochs=warmup_epochs, eval_every=eval_every, eval_batch_size=eval_batch_size),
            seed, RuntimeConfig(device=device, amp=amp, compile=compile, threads=threads,
                                checkpoint_dir=checkpoint_dir, keep_checkpoints=False, quiet=quiet or as_json))
        try:
            result = _model_errors(lambda: run_trial(config))
        except NonFiniteLossError as exc:  # the trial failed (exit 1, as a failed cell of `run`)
            err.print(f"[bold red]failed:[/] {exc}; try a lower --lr", highlight=False, soft_wrap=True)
            raise typer.Exit(EXIT_FAILURES) from None
    if as_json:
        metrics = result.metrics()
        metrics.pop("history")
        _print_json(metrics)
        return
    table = Table(title=f"{backbone} + {attention} on {dataset}, seed {seed}")
    table.add_column("metric")
    table.add_column("value", justify="right")
    for key in ("top1", "top5", "loss", "val_top1", "epochs", "images_per_second", "wall_seconds",
                "total_params", "attention_params", "flops", "kernel_sizes", "device"):
        value = getattr(result, key)
        if value is not None:
            table.add_row(key, f"{value:,.2f}" if isinstance(value, float) else f"{value:,}" if isinstance(value, int) else str(value))
    console.print(table)


def _parse_k(k: str | None) -> Any:
    if k is None:
        return None
    if k == "adaptive":
        return k
    try:
        values = [int(v) for v in k.replace(" ", "").split(",")]
    except ValueError:
        raise EcasweepError(f"--k: expected an odd integer, 'adaptive', or a list like 3,5,5,7; got {k!r}") from None
    return values[0] if len(values) == 1 else values
