"""``ecasweep bench``: the benchmarks (attention modules, models, the trial engine, sweeps)."""

from __future__ import annotations


from typing import Any, Optional

import typer


from .common import (app, console, _user_errors, _quiet_libraries, _print_json, _model_errors)


bench_app = typer.Typer(no_args_is_help=False, help="Benchmarks: attention modules, models (Table 3), "
                        "the trial engine, sweeps. With no sub-command, all four.")


app.add_typer(bench_app, name="bench")


BenchQuickOpt = typer.Option(False, "--quick", help="Tiny sizes: everything runs in seconds; the numbers mean little.")


BenchDeviceOpt = typer.Option("auto", "--device", help="cpu, cuda, cuda:N, mps or auto.")


BenchJsonOpt = typer.Option(False, "--json", help="Print the results as one JSON object.")


def _bench(names: tuple[str, ...], quick: bool, device: str, as_json: bool,
           options: dict[str, dict[str, Any]] | None = None) -> None:
    from ..bench import ratios, render, run_all

    _quiet_libraries()
    with _user_errors():
        results = _model_errors(lambda: run_all(quick=quick, device=device, which=names, options=options))
    if as_json:
        _print_json({**results, "ratios": ratios(results)})
        return
    render(results, console)
    for name, value in ratios(results).items():
        console.print(f"{name}: [bold]{value:.3f}[/]")


@bench_app.callback(invoke_without_command=True)
def bench_all(ctx: typer.Context, quick: bool = BenchQuickOpt, device: str = BenchDeviceOpt,
              as_json: bool = BenchJsonOpt) -> None:
    """Run all four benchmarks (under 5 minutes on a 2-core CPU).

    Example: [bold]ecasweep bench --json > bench.json[/]
    """
    if ctx.invoked_subcommand is None:
        from ..bench import BENCHMARKS

        _bench(BENCHMARKS, quick, device, as_json)


@bench_app.command("modules")
def bench_modules(quick: bool = BenchQuickOpt, device: str = BenchDeviceOpt, as_json: bool = BenchJsonOpt) -> None:
    """fwd+bwd time of every attention variant, and eca against the paper's eca_layer (ratio ref / ours).

    Example: [bold]ecasweep bench modules[/]
    """
    _bench(("modules",), quick, device, as_json)


@bench_app.command("models")
def bench_models(quick: bool = BenchQuickOpt, device: str = BenchDeviceOpt, as_json: bool = BenchJsonOpt,
                 attention: Optional[list[str]] = typer.Option(
                     None, "--attention", "-a", help="Variants to measure (repeat the option), built-in names or "
                     "your own module (my_attn.py:MyAttention, my_pkg.attn:MyAttention) \\[default: the paper's "
                     "Table 3 set]; none, the baseline, is always measured."),
                 backbone: Optional[str] = typer.Option(None, "--backbone", help="Backbone \\[default: resnet-50 on "
                                                        "a GPU, resnet-20 on the CPU].")) -> None:
    """The paper's Table 3 here: params, FLOPs, train/infer images/s, overhead vs none, the paper's beside.

    Examples:
      [bold]ecasweep bench models --device cuda[/]
      [bold]ecasweep bench models --attention my_attn.py:MyAttention --attention eca --backbone resnet-20[/]
    """
    options: dict[str, Any] = {}
    if attention:
        options["variants"] = ["none", *dict.fromkeys(a for a in attention if a != "none")]
    if backbone:
        options["backbone"] = backbone
    _bench(("models",), quick, device, as_json, {"models": options})


@bench_app.command("engine")
def bench_engine(quick: bool = BenchQuickOpt, device: str = BenchDeviceOpt, as_json: bool = BenchJsonOpt) -> None:
    """Images/s of the trial engine against a plain torchvision pipeline, and both accuracies.

    Example: [bold]ecasweep bench engine[/]
    """
    _bench(("engine",), quick, device, as_json)


@bench_app.command("sweep")
def bench_sweep(quick: bool = BenchQuickOpt, device: str = BenchDeviceOpt, as_json: bool = BenchJsonOpt) -> None:
    """A small grid study with 1 worker and with N: trials per hour, time outside training per trial.

    Example: [bold]ecasweep bench sweep[/]
    """
    _bench(("sweep",), quick, device, as_json)
