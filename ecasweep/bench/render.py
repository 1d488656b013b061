"""The benchmarks' results as Rich tables."""

from __future__ import annotations

from typing import Sequence





def render(results: dict[str, dict], console=None) -> None:
    """Print each benchmark's results as Rich tables."""
    from rich.console import Console

    console = console or Console()
    for name, fn in (("modules", _render_modules), ("models", _render_models), ("engine", _render_engine),
                     ("sweep", _render_sweep)):
        if name in results:
            for table in fn(results[name]):
                console.print(table)


def _machine_line(m: dict) -> str:
    load = f", load {m['load_average']:.1f}" if m.get("load_average") is not None else ""
    return f"{m['device_name']}, {m['threads']} thread(s), torch {m['torch']}{load}"


def _spread(r: dict[str, float], fmt: str = "{:.2f}") -> tuple[str, str, str]:
    return fmt.format(r["median"]), f"{fmt.format(r['q1'])}-{fmt.format(r['q3'])}", \
        f"{fmt.format(r['min'])}-{fmt.format(r['max'])}"


def _table(title: str, columns: Sequence[str]):
    """A table for 80 columns: no outer border, and the first column (the names) never cut."""
    from rich import box
    from rich.table import Table

    table = Table(title=title, box=box.SIMPLE_HEAD, pad_edge=False)
    for i, column in enumerate(columns):
        table.add_column(column, justify="left" if i == 0 else "right", no_wrap=i == 0)
    return table


def _layout(name: str) -> str:
    """Memory layouts by their short names (channels_last is NHWC in memory): tables fit 80 columns."""
    return {"channels_last": "NHWC", "nchw": "NCHW"}.get(name, name)


def _render_modules(r: dict) -> list:
    table = _table(f"eca fwd+bwd: reference / ours ({_machine_line(r['machine'])})",
                   ("shape", "layout", "ref ms", "ours ms", "ratio", "IQR", "min-max", "n"))
    for row in r["eca"]:
        table.add_row("x".join(map(str, row["shape"])), _layout(row["layout"]), f"{row['ref_ms']:.2f}",
                      f"{row['ours_ms']:.2f}", *_spread(row["ratio"]), str(row["repeats"]))
    tables = [table]
    if r["variants"]:  # one row per variant (there are many), one column per shape and layout (a few)
        names = list(r["variants"][0]["ms"])
        table = _table("every variant, fwd+bwd median ms",
                       ("variant", *("x".join(map(str, row["shape"])) + f" {_layout(row['layout'])}"
                                     for row in r["variants"])))
        for name in names:
            table.add_row(name, *(f"{row['ms'][name]:.2f}" for row in r["variants"]))
        tables.append(table)
    return tables


def _pct(r: dict | None) -> str:
    return "" if r is None else f"{100 * r['median']:+.1f}% [{100 * r['q1']:+.1f}, {100 * r['q3']:+.1f}]"


def _render_models(r: dict) -> list:
    table = _table(f"{r['backbone']}, batch {r['batch_size']}, input {r['input'][0]}x{r['input'][1]}px "
                   f"({_machine_line(r['machine'])})",
                   ("attention", "params", "attn params", "GFLOPs", "train img/s", "train overhead [IQR]",
                    "infer img/s", "infer overhead [IQR]"))
    for row in r["rows"]:
        table.add_row(row["attention"], f"{row['params']:,}", f"{row['attention_params']:,}",
                      f"{row['flops'] / 2e9:.4f}", f"{row['train_images_per_s']:.0f}", _pct(row["train_overhead"]),
                      f"{row['infer_images_per_s']:.0f}", _pct(row["infer_overhead"]))
    # The paper's overheads beside its own figures, in a table of their own: both fit 80 columns.
    paper_table = _table(f"the paper's Table 3, {r['paper_backbone']} (4x RTX 2080Ti)",
                         ("method", "params (M)", "GFLOPs", "train FPS", "infer FPS", "train overhead",
                          "infer overhead"))
    for variant, p in r["paper"].items():
        paper_table.add_row(variant, f"{p['params_m']:.2f}", f"{p['gflops']:.2f}", f"{p['train_fps']}",
                            f"{p['infer_fps']}", f"{100 * p['train_overhead']:+.1f}%",
                            f"{100 * p['infer_overhead']:+.1f}%")
    return [table, paper_table]


def _render_engine(r: dict) -> list:
    title = (f"trial engine vs torchvision pipeline: {r['model']}, {r['dataset']} {r['subset']} images x "
             f"{r['epochs']} epoch(s), batch {r['batch_size']} ({_machine_line(r['machine'])})")
    table = _table(title, ("pipeline", "train img/s", "test top-1 %"))
    table.add_row("ecasweep engine (channels_last)", f"{r['engine']['images_per_s']:.0f}", f"{r['engine']['top1']:.2f}")
    table.add_row(f"torchvision DataLoader (NCHW, {r['num_workers']} workers)",
                  f"{r['torchvision']['images_per_s']:.0f}", f"{r['torchvision']['top1']:.2f}")
    data = r["data_only_images_per_s"]
    table.add_row("data alone, no model: engine / torchvision", f"{data['engine']:.0f} / {data['torchvision']:.0f}", "")
    median, iqr, span = _spread(r["ratio"])
    table.add_row("ratio engine / torchvision", f"{median} [{iqr}] n={r['repeats']}",
                  f"diff {r['top1_difference']:+.2f}")
    tables = [table]
    if r.get("notice"):
        tables.append(f"[yellow]notice:[/] {r['notice']}")
    return tables


def _render_sweep(r: dict) -> list:
    table = _table(f"sweep: {r['cells']} cells of {r['backbone']} on synthetic data, 1 vs {r['workers']} workers "
                   f"({_machine_line(r['machine'])})",
                   ("workers", "trials/h", "steady trials/h", "start-up s", "median trial s", "in-trial overhead s",
                    "outside training per trial s", "% of a 30 s trial"))
    for label, s in (("1", r["one"]), (str(r["workers"]), r["many"])):
        table.add_row(label, f"{s['trials_per_hour']:.0f}", f"{s['steady_trials_per_hour']:.0f}",
                      f"{s['startup_s']:.1f}", f"{s['trial_s']:.2f}", f"{s['in_trial_overhead_s']:.3f}",
                      f"{s['outside_training_per_trial_s']:.2f}", f"{s['outside_training_pct_of_30s']:.1f}%")
    median, iqr, _ = _spread(r["ratio"])
    steady, steady_iqr, _ = _spread(r["steady_ratio"])
    table.add_row(f"ratio {r['workers']} / 1", f"{median} [{iqr}] n={r['repeats']}", f"{steady} [{steady_iqr}]",
                  "", "", "", "", "")
    return [table]
