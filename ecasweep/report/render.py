"""A ``Table`` drawn as Rich, Markdown, CSV, JSON or LaTeX."""

from __future__ import annotations

import csv
import io
import json
import re
from typing import Any

from ..errors import EcasweepError
from . import efficiency
from .labels import KERNEL_ATTENTIONS, _ks, _num, arm_label
from .tables import PAPER_COLUMN, ROW_FIELDS, Row, Table


FORMATS = ("rich", "markdown", "csv", "json", "latex")


def _digits(metric: str) -> int:
    return 3 if metric == "loss" else 2


def _fmt(x: float | None, digits: int = 2, sign: bool = False) -> str:
    if x is None:
        return ""
    return f"{x:+.{digits}f}" if sign else f"{x:.{digits}f}"


def _fmt_p(p: float | None) -> str:
    if p is None:
        return ""
    return "<0.001" if p < 0.001 else f"{p:.3f}"


def _mean_std(r: Row, digits: int) -> str:
    if r.mean is None:
        return ""
    return _fmt(r.mean, digits) + (f" ± {_fmt(r.std, digits)}" if r.std is not None else "")


def _n(r: Row) -> str:
    return f"{r.n}/{r.planned}" + (f" ({r.failed} failed)" if r.failed else "")


def _tied(r: Row) -> str:
    return "best" if r.best else ("tied" if r.tied_with_best else ("untested" if r.untested else ""))


def _mark(r: Row) -> str:
    """The mark after a mean in the grids: * best, ≈ tied with it, ? untested."""
    return " *" if r.best else (" ≈" if r.tied_with_best else (" ?" if r.untested else "  "))


def _count(x: int | None) -> str:
    if x is None:
        return ""
    for unit, size in (("G", 1e9), ("M", 1e6), ("k", 1e3)):
        if abs(x) >= size:
            return f"{x / size:.2f}{unit}"
    return str(x)


def _ci(r: Row, digits: int) -> str:
    return f"[{_fmt(r.ci_low, digits)}, {_fmt(r.ci_high, digits)}]" if r.ci_low is not None else ""


def _flat_columns(table: Table) -> list[tuple[str, Any]]:
    """(header, row -> text) in priority order: the key columns first, secondary after."""
    d = _digits(table.metric)
    key = [("variant", lambda r: r.label), ("n", _n), ("mean ± std", lambda r: _mean_std(r, d))]
    if table.baseline is not None:
        key += [("Δ", lambda r: _fmt(r.delta, d, sign=True)), ("p (Holm)", lambda r: _fmt_p(r.p_value))]
    key.append(("tied", _tied))
    secondary = [(f"{int(table.confidence * 100)}% CI", lambda r: _ci(r, d))]
    if table.metric != "top5":
        secondary.append(("top-5", lambda r: _fmt(r.top5_mean, 2)))
    secondary += [("attn params", lambda r: "" if r.attention_params is None else f"{r.attention_params:,}"),
                  ("params", lambda r: _count(r.total_params)), ("FLOPs", lambda r: _count(r.flops)),
                  (PAPER_COLUMN, lambda r: _fmt(r.paper, 2)), ("attention", lambda r: r.formula)]
    if len(table.backbones) > 1:
        key.insert(1, ("backbone", lambda r: r.backbone))
    if table.layout == "table3":  # the efficiency columns are what Table 3 is about: first of the rest
        secondary = efficiency.columns(_count) + [c for c in secondary if c[0] not in ("params", "FLOPs")]
    return key + secondary


def render(table: Table, fmt: str = "rich") -> Any:
    """``table`` as ``fmt``: ``rich`` (a Rich renderable), or a string for ``markdown``, ``csv``,
    ``json`` and ``latex``.

    >>> print(render(table, "markdown"))  # doctest: +SKIP
    """
    renderers = {"rich": _render_rich, "markdown": _render_markdown, "csv": _render_csv,
                 "json": lambda t: json.dumps(t.to_dict(), indent=2, ensure_ascii=False, allow_nan=False),
                 "latex": _render_latex}
    if fmt not in renderers:
        raise EcasweepError(f"unknown format {fmt!r}; expected one of: {', '.join(FORMATS)}")
    return renderers[fmt](table)


def _render_csv(table: Table) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(ROW_FIELDS)
    for r in table.rows:
        writer.writerow(["" if v is None else json.dumps(v, ensure_ascii=False) if isinstance(v, (dict, list))
                         else v for v in (getattr(r, f) for f in ROW_FIELDS)])
    return out.getvalue()


def _render_markdown(table: Table) -> str:
    columns = _flat_columns(table)
    esc = lambda s: str(s).replace("|", "\\|")  # noqa: E731
    lines = ["| " + " | ".join(esc(h) for h, _ in columns) + " |",
             "|" + "|".join("---" if h in ("variant", "backbone", "attention") else "--:" for h, _ in columns) + "|"]
    lines += ["| " + " | ".join(esc(get(r)) for _, get in columns) + " |" for r in table.rows]
    return "\n".join(lines) + f"\n\n{table.caption}\n"


_LATEX_SPECIAL = {"\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#", "_": r"\_",
                  "{": r"\{", "}": r"\}", "~": r"\textasciitilde{}", "^": r"\textasciicircum{}"}
_LATEX_UNICODE = {"±": r"$\pm$", "σ": r"$\sigma$", "γ": r"$\gamma$", "β": r"$\beta$", "Δ": r"$\Delta$",
                  "α": r"$\alpha$", "ω": r"$\omega$", "⊙": r"$\odot$", "×": r"$\times$", "²": r"$^2$",
                  "≥": r"$\geq$", "->": r"$\to$", "<": r"$<$", "θ": r"$\theta$", "⁻": r"$^-$", "⁺": r"$^+$"}


def latex_escape(text: str) -> str:
    """``text`` safe for LaTeX: special characters escaped, the Greek and math symbols as math."""
    out = re.sub(r"[\\&%$#_{}~^]", lambda m: _LATEX_SPECIAL[m[0]], str(text))
    for char, command in _LATEX_UNICODE.items():
        out = out.replace(char, command)
    return out


def _render_latex(table: Table) -> str:
    columns = [c for c in _flat_columns(table) if c[0] not in ("attention", "FLOPs", "params")]
    align = "".join("l" if h in ("variant", "backbone") else "r" for h, _ in columns)
    lines = [r"\begin{table}", r"\centering", rf"\begin{{tabular}}{{{align}}}", r"\toprule",
             " & ".join(latex_escape(h) for h, _ in columns) + r" \\", r"\midrule"]
    lines += [" & ".join(latex_escape(get(r)) for _, get in columns) + r" \\" for r in table.rows]
    lines += [r"\bottomrule", r"\end{tabular}", rf"\caption{{{latex_escape(table.caption)}}}",
              r"\end{table}"]
    return "\n".join(lines) + "\n"


class _Fitted:
    """A Rich renderable that picks its columns when it knows the width: the key columns always,
    secondary ones while they fit."""

    def __init__(self, table: Table) -> None:
        self.table = table

    def __rich_console__(self, console, options):
        from rich.console import Group
        from rich.text import Text

        builder = {"figure4": _rich_figure4, "gamma-beta": _rich_gamma_beta}.get(self.table.layout, _rich_flat)
        yield Group(*builder(self.table, options.max_width), Text(self.table.caption, style="dim"))


def _render_rich(table: Table) -> Any:
    return _Fitted(table)


def _fit(headers_cells: list[tuple[str, list[str]]], n_key: int, width: int) -> list[int]:
    """Indices of the columns to keep: the first ``n_key`` always, then each that still fits."""
    used, keep = -2, []
    for i, (header, cells) in enumerate(headers_cells):
        need = max([len(header)] + [len(c) for c in cells]) + 2  # one space of padding each side
        if i < n_key or used + need <= width:
            keep.append(i)
            used += need
    return keep


def _rich_flat(table: Table, width: int) -> list[Any]:
    from rich import box
    from rich.table import Table as RichTable

    columns = [c for c in _flat_columns(table) if c[0] != "backbone"]  # backbones head their sections
    columns[1] = ("n", lambda r: f"{r.n}/{r.planned}" + (f" ✗{r.failed}" if r.failed else ""))
    if table.baseline is not None:
        columns[4] = ("p", columns[4][1])  # the caption says it is Holm-adjusted
    if table.layout == "search":  # ranked by the objective; the trials' own parameters while they fit
        names = sorted({k for r in table.rows for k in r.params if k != "attention"})
        columns = ([columns[0], columns[1], ("objective", lambda r: _fmt(r.objective, 2)), columns[2],
                    ("tied", _tied)] + [(k, lambda r, k=k: _num(r.params.get(k, ""))) for k in names])
        n_key = 5
    else:
        n_key = 6 if table.baseline is not None else 4
    cells = [(h, [get(r) for r in table.rows]) for h, get in columns]
    keep = _fit(cells, n_key, width)
    out = RichTable(title=f"{table.study} — {table.metric}", box=box.SIMPLE_HEAD, pad_edge=False, expand=False)
    for i in keep:
        header = cells[i][0]
        longest = max([len(header)] + [len(c) for c in cells[i][1]])
        out.add_column(header, justify="left" if header in ("variant", "attention") else "right",
                       overflow="fold", no_wrap=header not in ("variant", "attention"),
                       min_width=min(longest, 24) if header == "variant" else None)
    previous = None
    for j, r in enumerate(table.rows):
        if len(table.backbones) > 1 and r.backbone != previous and table.layout != "search":
            if previous is not None:
                out.add_section()
            out.add_row(f"[bold]{r.backbone}[/bold]")
        previous = r.backbone
        style = "bold green" if r.best else ("green" if r.tied_with_best else ("yellow" if r.n < r.planned else None))
        out.add_row(*(cells[i][1][j] for i in keep), style=style)
    return [out]


_BLOCKS = " ▏▎▍▌▋▊▉█"


def _bar(value: float | None, low: float, high: float, width: int = 12) -> str:
    """A horizontal bar of block characters, 1 cell at ``low``, ``width`` at ``high``."""
    if value is None:
        return ""
    frac = 1.0 if high == low else (value - low) / (high - low)
    eighths = round((1 + frac * (width - 1)) * 8)
    return "█" * (eighths // 8) + (_BLOCKS[eighths % 8] if eighths % 8 else "")


def _rich_figure4(table: Table, width: int) -> list[Any]:
    """Rows = kernel sizes (then the reference arms), one column group per backbone with a bar.
    Backbones that do not fit side by side at ``width`` go to tables of their own; the secondary
    columns (the bars, then the paper's figure, then the CI) are left out where they would push an
    arm's label onto a second line."""
    from rich.console import Console
    from rich.text import Text

    arms = list(dict.fromkeys(r.arm for r in table.rows))
    ecas = [a for a in arms if any(r.params.get("attention") in KERNEL_ATTENTIONS for r in table.rows if r.arm == a)]
    order = ecas + [a for a in arms if a not in ecas]
    group_width = 57 if table.baseline is not None else 45  # n, mean ± std, CI, bar (and Δ, p)
    per_table = max(1, (width - 26) // group_width)
    out: list[Any] = []
    with_bars = False
    for start in range(0, len(table.backbones), per_table):
        backbones = table.backbones[start:start + per_table]
        for optional in (("ci", "paper", "bar"), ("ci", "paper"), ("ci",), ()):  # one line per arm first
            rich = _figure4_group(table, backbones, order, ecas, optional)
            if not optional or Console(width=10 * width).measure(rich).maximum <= width:
                break
        with_bars = with_bars or "bar" in optional
        out.append(rich)
    bars = "; bars scaled between the lowest and highest mean of each backbone" if with_bars else ""
    untested = ", ? untested (too few seeds for a test)" if any(r.untested for r in table.rows) else ""
    out.append(Text(f"* best, ≈ tied with the best{untested}{bars}."))
    return out


def _figure4_group(table: Table, backbones: list[str], order: list[str], ecas: list[str],
                   optional: tuple[str, ...]) -> Any:
    """One Figure-4 table: the arms in ``order``, a column group for each of ``backbones``, with
    the ``optional`` columns of ``"ci"``, ``"bar"`` and ``"paper"``."""
    from rich import box
    from rich.table import Table as RichTable

    d = _digits(table.metric)
    by = {(r.backbone, r.arm): r for r in table.rows}
    rich = RichTable(title=f"{table.study} — {table.metric} — {', '.join(backbones)}", box=box.SIMPLE_HEAD,
                     pad_edge=False)
    rich.add_column("k / variant", overflow="fold", min_width=16)
    for b in backbones:
        short = b if len(backbones) == 1 else f"{b}: n"
        rich.add_column(short if len(backbones) > 1 else "n", justify="right", no_wrap=True)
        rich.add_column("mean ± std", justify="right", no_wrap=True)
        if "ci" in optional:
            rich.add_column(f"{int(table.confidence * 100)}% CI", justify="right", no_wrap=True)
        if "bar" in optional:
            rich.add_column("", no_wrap=True)
        if table.baseline is not None:
            rich.add_column("Δ", justify="right", no_wrap=True)
            rich.add_column("p", justify="right", no_wrap=True)
    paper = "paper" in optional
    if paper:
        rich.add_column("paper R-50", justify="right")
    per_backbone = 2 + len(set(optional) - {"paper"}) + (2 if table.baseline is not None else 0)
    for arm in order:
        rows = [by.get((b, arm)) for b in backbones]
        first = next(r for r in (by.get((b, arm)) for b in table.backbones) if r is not None)
        kss = [_ks(r.kernel_sizes) for r in rows if r is not None and r.kernel_sizes]
        label = arm_label(first.params)
        if first.params.get("k") in ("adaptive", "official") and kss:
            label += " -> k " + " · ".join(kss)
        cells: list[str] = [label if arm in ecas else f"[dim]{label}[/dim]"]
        for b, r in zip(backbones, rows):
            means = [x.mean for x in table.rows if x.backbone == b and x.mean is not None]
            lo, hi = (min(means), max(means)) if means else (0.0, 0.0)
            if r is None:
                cells += [""] * per_backbone
                continue
            cells += [f"{r.n}/{r.planned}" + (f" ✗{r.failed}" if r.failed else ""), _mean_std(r, d) + _mark(r)]
            cells += [_ci(r, d)] if "ci" in optional else []
            cells += [_bar(r.mean, lo, hi, 8)] if "bar" in optional else []
            if table.baseline is not None:
                cells += [_fmt(r.delta, d, sign=True), _fmt_p(r.p_value)]
        if paper:
            cells.append(_fmt(first.paper, 2))
        rich.add_row(*cells)
    return rich


def _rich_gamma_beta(table: Table, width: int) -> list[Any]:
    """A gamma x beta grid per backbone: mean ± std, n and the per-stage k in each cell."""
    from rich.table import Table as RichTable

    d = _digits(table.metric)
    out = []
    for b in table.backbones:
        rows = [r for r in table.rows if r.backbone == b]
        grid = [r for r in rows if r.params.get("k") == "adaptive"]
        gammas = sorted({r.params.get("gamma", 2) for r in grid})
        betas = sorted({r.params.get("beta", 1) for r in grid})
        rich = RichTable(title=f"{table.study} — {b} — {table.metric}", show_lines=True)
        rich.add_column("γ \\ β")
        for beta in betas:
            rich.add_column(f"β={_num(beta)}", justify="right")
        for gamma in gammas:
            cells = [f"γ={_num(gamma)}"]
            for beta in betas:
                r = next((r for r in grid if r.params.get("gamma", 2) == gamma and r.params.get("beta", 1) == beta), None)
                mark = "" if r is None else _mark(r).rstrip()
                cells.append("" if r is None else f"{_mean_std(r, d)}{mark}\nn {_n(r)}"
                             + (f"  k {_ks(r.kernel_sizes)}" if r.kernel_sizes else ""))
            rich.add_row(*cells)
        out.append(rich)
        others = [r for r in rows if r not in grid]
        if others:
            sub = Table(**{**table.__dict__, "rows": others, "backbones": [b], "layout": "table2"})
            out += _rich_flat(sub, width)
    return out
