"""The study drawn with matplotlib."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Mapping, Sequence

from ..errors import EcasweepError
from ..store.results import TrialRecord
from .labels import KERNEL_ATTENTIONS, _ks, _num
from .tables import Row, Table, build_table


def _figure(panels: int, height: float = 4.0, width: float = 6.0):
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError:
        raise EcasweepError('matplotlib is not installed: pip install "ecasweep[plot]"') from None
    # A Figure on the Agg canvas directly: no pyplot, no global backend switched under the caller.
    fig = Figure(figsize=(width * panels, height), dpi=100, layout="constrained")
    FigureCanvasAgg(fig)
    return fig, fig.subplots(1, panels, squeeze=False)[0]


def plot(spec: Mapping[str, Any], records: Sequence[TrialRecord], output: Path, metric: str = "top1",
         layout: str | None = None, study: Any = None) -> Path:
    """Draw the study to ``output`` (PNG, PDF or SVG by its suffix): accuracy vs k per backbone with
    error bars (figure4), bars per variant (table2), a gamma x beta heatmap (gamma-beta), or Optuna's
    slice plot (search; needs the ``optuna.Study`` as ``study``). Error bars are one SD over seeds.

    >>> plot(spec, records, Path("figure4.png"))  # doctest: +SKIP
    """
    output = Path(output)
    table = build_table(spec, records, metric=metric, baseline=None, layout=layout)
    if table.layout == "search":
        return _plot_search(study, output)
    draw = {"figure4": _plot_figure4, "gamma-beta": _plot_gamma_beta}.get(table.layout, _plot_bars)
    fig, axes = _figure(max(1, len(table.backbones)))
    for ax, backbone in zip(axes, table.backbones):
        draw(ax, table, [r for r in table.rows if r.backbone == backbone])
        ax.set_title(backbone)
    fig.suptitle(f"{table.study}: {table.metric} (mean ± SD over seeds)")
    fig.savefig(output)
    return output


def _plot_bars(ax, table: Table, rows: list[Row]) -> None:
    shown = [r for r in rows if r.mean is not None]
    ax.bar(range(len(shown)), [r.mean for r in shown], yerr=[r.std or 0.0 for r in shown], capsize=3,
           color=["tab:green" if r.best else "tab:blue" for r in shown])
    ax.set_xticks(range(len(shown)), [r.label for r in shown], rotation=45, ha="right", fontsize=7)
    if shown:
        lo = min(r.mean - (r.std or 0) for r in shown)
        hi = max(r.mean + (r.std or 0) for r in shown)
        pad = (hi - lo) * 0.2 or 0.5
        ax.set_ylim(lo - pad, hi + pad)
    ax.set_ylabel(table.metric)


def _plot_figure4(ax, table: Table, rows: list[Row]) -> None:
    ecas = [r for r in rows if r.params.get("attention") in KERNEL_ATTENTIONS and r.mean is not None]
    fixed = sorted((r for r in ecas if isinstance(r.params.get("k", 3), int)), key=lambda r: r.params.get("k", 3))
    other = [r for r in ecas if r not in fixed]
    xs = list(range(len(fixed) + len(other)))
    ax.errorbar(xs[:len(fixed)], [r.mean for r in fixed], yerr=[r.std or 0 for r in fixed], marker="o", capsize=3,
                label="fixed k")
    if other:
        ax.errorbar(xs[len(fixed):], [r.mean for r in other], yerr=[r.std or 0 for r in other], marker="s",
                    linestyle="none", capsize=3, color="tab:red", label="adaptive / per stage")
    ax.set_xticks(xs, [str(r.params.get("k", 3)) for r in fixed] +
                  [("adaptive\n" if r.params.get("k") == "adaptive" else "") + _ks(r.kernel_sizes) for r in other])
    for r in rows:
        if r not in ecas and r.mean is not None:
            ax.axhline(r.mean, linestyle="--", linewidth=1, color="gray")
            ax.annotate(r.label, (0, r.mean), fontsize=7, color="gray", va="bottom")
    ax.set_xlabel("k")
    ax.set_ylabel(table.metric)
    ax.legend(fontsize=7)


def _plot_gamma_beta(ax, table: Table, rows: list[Row]) -> None:
    grid = [r for r in rows if r.params.get("k") == "adaptive"]
    gammas = sorted({r.params.get("gamma", 2) for r in grid})
    betas = sorted({r.params.get("beta", 1) for r in grid})
    values = [[math.nan] * len(betas) for _ in gammas]
    for r in grid:
        if r.mean is not None:
            values[gammas.index(r.params.get("gamma", 2))][betas.index(r.params.get("beta", 1))] = r.mean
    image = ax.imshow(values, cmap="viridis", aspect="auto")
    ax.set_xticks(range(len(betas)), [_num(b) for b in betas])
    ax.set_yticks(range(len(gammas)), [_num(g) for g in gammas])
    for r in grid:
        if r.mean is not None:
            ax.text(betas.index(r.params.get("beta", 1)), gammas.index(r.params.get("gamma", 2)),
                    f"{r.mean:.2f}\nk {_ks(r.kernel_sizes)}", ha="center", va="center", fontsize=7, color="white")
    ax.set_xlabel("β")
    ax.set_ylabel("γ")
    ax.figure.colorbar(image, ax=ax, label=table.metric)


def _plot_search(study: Any, output: Path) -> Path:
    if study is None:
        raise EcasweepError("plotting a search study needs the optuna.Study (plot(..., study=study))")
    try:
        import matplotlib
    except ImportError:
        raise EcasweepError('matplotlib is not installed: pip install "ecasweep[plot]"') from None
    matplotlib.use("Agg")  # optuna's plots go through pyplot
    import matplotlib.pyplot as plt
    from optuna.visualization.matplotlib import plot_slice

    axes = plot_slice(study)
    fig = (axes.flat[0] if hasattr(axes, "flat") else axes).figure
    fig.savefig(output)
    plt.close(fig)
    return output
