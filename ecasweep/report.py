"""Tables, comparisons and plots of a study, computed once and rendered in several formats.

``build_table(spec, records)`` turns the stored trials (``results.read_records``) into a plain
``Table``: one ``Row`` per arm per backbone, with its statistics over seeds from ``ecasweep.stats``.
``render(table, fmt)`` then draws it as ``rich`` (a Rich renderable that fits the console width),
``markdown``, ``csv``, ``json`` or ``latex``. ``compare_arms`` puts two arms side by side, seed by
seed; ``plot`` draws the study with matplotlib. A report never trains and never writes to the study.

Example:
    >>> import optuna
    >>> from ecasweep.results import SPEC_ATTR, read_records
    >>> study = optuna.load_study(study_name="table2", storage="sqlite:///ecasweep.db")  # doctest: +SKIP
    >>> table = build_table(study.user_attrs[SPEC_ATTR], read_records(study))  # doctest: +SKIP
    >>> print(render(table, "markdown"))  # doctest: +SKIP

JSON schema (``render(table, "json")``, schema id ``ecasweep.table/1``)::

    {
      "schema": "ecasweep.table/1",
      "study": str,             # the spec's name
      "metric": "top1" | "top5" | "loss",
      "layout": "table2" | "figure4" | "gamma-beta" | "search",
      "baseline": str | null,   # arm id that delta and p refer to
      "test": "t" | "wilcoxon",
      "confidence": 0.95,
      "caption": str,
      "devices": [str], "failed": int, "planned": int,
      "power": [{"backbone", "arm_a", "arm_b", "label_a", "label_b", "delta", "sd_diff", "seeds"}],
      "rows": [{
        "label": str,           # the paper's naming, e.g. "ECA (k=3)", "SE-GC (S=16)"
        "backbone": str, "arm": str, "params": {"attention": str, ...kwargs},
        "formula": str,         # the gate as in the paper's Table 2, e.g. "σ(C1D_k(y))"
        "kernel_sizes": [int] | null,
        "attention_params": int | null, "total_params": int | null, "flops": int | null,
        "n": int,               # complete seeds
        "planned": int,         # seeds the spec plans
        "failed": int,          # cells whose counting trial failed
        "mean", "std", "ci_low", "ci_high": float | null,   # of the metric over seeds, t interval
        "boot_low", "boot_high": float | null,              # bootstrap interval (with bootstrap=True)
        "top5_mean": float | null,
        "objective": float | null,                          # mean of the trials' Optuna values
        "delta": float | null,  # mean - baseline mean on the same backbone (paired seeds when shared)
        "delta_ci_low", "delta_ci_high": float | null,
        "p_raw": float | null,  # test vs the baseline
        "p_value": float | null,  # Holm-adjusted over the comparisons on the same backbone
        "p_vs_best": float | null,  # Holm-adjusted p vs the best arm of the backbone
        "best": bool, "tied_with_best": bool,  # the best row is tied with itself
        "paper": float | null,  # the paper's ImageNet ResNet-50 figure for this variant
        "paper_method": str | null  # the paper's name for it ("SE-GC1", "ECA"...)
      }]
    }

Numbers are plain JSON numbers (never NaN); what cannot be computed is null.
"""

from __future__ import annotations

import csv
import io
import json
import math
import re
import tomllib
from dataclasses import asdict, dataclass, field, fields
from importlib import resources
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

from . import stats
from .errors import EcasweepError
from .results import TrialRecord, latest_by_cell

METRICS = ("top1", "top5", "loss")
LAYOUTS = ("table2", "figure4", "gamma-beta", "search")
FORMATS = ("rich", "markdown", "csv", "json", "latex")
SCHEMA = "ecasweep.table/1"
PAPER_COLUMN = "paper (ImageNet, ResNet-50)"
KERNEL_ATTENTIONS = ("eca", "eca-ns", "ceca")


@dataclass
class Row:
    """One arm on one backbone. Field meanings: see the module docstring (JSON schema)."""

    label: str
    backbone: str
    arm: str
    params: dict[str, Any]
    formula: str
    kernel_sizes: list[int] | None
    attention_params: int | None
    total_params: int | None
    flops: int | None
    n: int
    planned: int
    failed: int
    mean: float | None
    std: float | None
    ci_low: float | None
    ci_high: float | None
    boot_low: float | None
    boot_high: float | None
    top5_mean: float | None
    objective: float | None
    delta: float | None = None
    delta_ci_low: float | None = None
    delta_ci_high: float | None = None
    p_raw: float | None = None
    p_value: float | None = None
    p_vs_best: float | None = None
    best: bool = False
    tied_with_best: bool = False
    paper: float | None = None
    paper_method: str | None = None


ROW_FIELDS = tuple(f.name for f in fields(Row))


@dataclass
class Table:
    """A study's results as plain values: ``rows`` plus what the caption says, ready to render."""

    study: str
    metric: str
    layout: str
    baseline: str | None
    test: str
    rows: list[Row]
    caption: str
    backbones: list[str]
    planned: int
    failed: int
    devices: list[str] = field(default_factory=list)
    power: list[dict[str, Any]] = field(default_factory=list)
    confidence: float = 0.95
    lower_is_better: bool = False

    @property
    def columns(self) -> tuple[str, ...]:
        return ROW_FIELDS

    def to_dict(self) -> dict[str, Any]:
        """The JSON document described in the module docstring."""
        return {"schema": SCHEMA, "study": self.study, "metric": self.metric, "layout": self.layout,
                "baseline": self.baseline, "test": self.test, "confidence": self.confidence,
                "caption": self.caption, "devices": self.devices, "failed": self.failed,
                "planned": self.planned, "power": self.power, "rows": [asdict(r) for r in self.rows]}


# The paper's figures -----------------------------------------------------------------------------

def paper_reference() -> dict[str, Any]:
    """``ecasweep/reference/eca_net_paper.toml``: the paper's figures with their provenance."""
    text = resources.files("ecasweep").joinpath("reference/eca_net_paper.toml").read_text(encoding="utf-8")
    return tomllib.loads(text)


def _paper_method(params: Mapping[str, Any]) -> str | None:
    """The paper's Table 2 name of the variant ``params`` when it is one of them (ResNet-50 setting)."""
    att, kw = params.get("attention", "none"), params
    if att == "se-gc":
        return {("groups", 16): "SE-GC1", ("group_size", 16): "SE-GC2", ("group_size", 8): "SE-GC3"}.get(
            ("groups", kw["groups"]) if kw.get("groups") is not None else ("group_size", kw.get("group_size")))
    if att in ("eca", "eca-ns"):
        return ("ECA" if att == "eca" else "ECA-NS") if kw.get("k", 3) == 3 else None
    if att == "se":
        return "SE" if kw.get("r", 16) == 16 else None
    return {"none": "Vanilla", "se-var1": "SE-Var1", "se-var2": "SE-Var2", "se-var3": "SE-Var3"}.get(att)


def _paper_top(params: Mapping[str, Any], metric: str, reference: Mapping[str, Any]) -> float | None:
    """The paper's ImageNet ResNet-50 figure (Table 2; Figure 4 anchor for adaptive k)."""
    if metric not in ("top1", "top5"):
        return None
    method = _paper_method(params)
    rows = {r["method"]: r for r in reference["table2"]}
    if method in rows:
        return rows[method][metric]
    adaptive = reference["adaptive_k"]
    if (params.get("attention") == "eca" and params.get("k") == "adaptive" and metric == "top1"
            and params.get("gamma", 2) == adaptive["gamma"] and params.get("beta", 1) == adaptive["beta"]):
        return reference["figure4"]["resnet50_adaptive"]
    return None


# Labels ------------------------------------------------------------------------------------------

def _num(x: Any) -> str:
    return f"{x:g}" if isinstance(x, float) else str(x)


def _ks(kernel_sizes: Sequence[Any] | None) -> str:
    return "/".join(str(k) for k in kernel_sizes) if kernel_sizes else ""


def arm_label(params: Mapping[str, Any], kernel_sizes: Sequence[int] | None = None) -> str:
    """The paper's name for an arm: ``Vanilla``, ``SE (r=16)``, ``SE-GC (G=16)``, ``ECA (k=3)``,
    ``ECA (adaptive, γ=2, β=1 -> k 3/5/5/7)`` (``kernel_sizes``: the per-stage k the trials report).

    >>> arm_label({"attention": "eca", "k": "adaptive"}, [3, 5, 5, 7])
    'ECA (adaptive, γ=2, β=1 -> k 3/5/5/7)'
    """
    att = params.get("attention", "none")
    kw = {k: v for k, v in params.items() if k != "attention"}
    name = {"none": "Vanilla", "se": "SE", "se-var1": "SE-Var1", "se-var2": "SE-Var2", "se-var3": "SE-Var3",
            "se-gc": "SE-GC", "eca-ns": "ECA-NS", "eca": "ECA", "ceca": "C-ECA"}.get(att, att)
    parts: list[str] = []
    if att == "se":
        parts.append(f"r={_num(kw.pop('r', 16))}")
    elif att == "se-gc":
        if kw.get("groups") is not None:
            parts.append(f"G={_num(kw.pop('groups'))}")
            kw.pop("group_size", None)
        elif kw.get("group_size") is not None:
            parts.append(f"S={_num(kw.pop('group_size'))}")
            kw.pop("groups", None)
    elif att in KERNEL_ATTENTIONS:
        k = kw.pop("k", 3)
        gamma, beta = kw.pop("gamma", None), kw.pop("beta", None)
        if k == "adaptive":
            parts.append(f"adaptive, γ={_num(2 if gamma is None else gamma)}, β={_num(1 if beta is None else beta)}"
                         + (f" -> k {_ks(kernel_sizes)}" if kernel_sizes else ""))
        elif k == "official":
            parts.append("official" + (f" -> k {_ks(kernel_sizes)}" if kernel_sizes else ""))
        elif isinstance(k, (list, tuple)) or (isinstance(k, str) and k.isdigit()):
            parts.append(f"k {_ks(list(k))}")
        else:
            parts.append(f"k={_num(k)}")
    for key in sorted(kw):  # anything else the arm sets (bias, min_k...) stays visible
        value = kw[key]
        if value is not None and value is not False:
            parts.append(key if value is True else f"{key}={_num(value)}")
    return f"{name} ({', '.join(parts)})" if parts else name


def _formula(params: Mapping[str, Any], reference: Mapping[str, Any]) -> str:
    att = params.get("attention", "none")
    by_method = {r["method"]: r["attention"] for r in reference["table2"]}
    if att == "se-gc":
        if params.get("groups") is not None:
            return f"σ(GC_{_num(params['groups'])}(y))"
        return f"σ(GC_C/{_num(params.get('group_size'))}(y))"
    if att == "ceca":
        return "σ(C1D_k(y)), circular padding"
    method = {"none": "Vanilla", "se": "SE", "se-var1": "SE-Var1", "se-var2": "SE-Var2", "se-var3": "SE-Var3",
              "eca-ns": "ECA-NS", "eca": "ECA"}.get(att)
    return by_method.get(method, "")


# Building the table ------------------------------------------------------------------------------

@dataclass
class _Cells:
    """The counting trials of one arm on one backbone."""

    params: dict[str, Any]
    complete: list[TrialRecord] = field(default_factory=list)
    failed: int = 0


def _group(spec: Mapping[str, Any], records: Iterable[TrialRecord]) -> dict[tuple[str, str], _Cells]:
    """(backbone, arm) -> its cells, in spec order (arms the spec does not list come after)."""
    groups: dict[tuple[str, str], _Cells] = {}
    for backbone in spec.get("backbones", []):
        for arm in spec.get("arms", []):
            groups[(backbone, arm["id"])] = _Cells({"attention": arm["attention"], **arm.get("kwargs", {})})
    for r in sorted(latest_by_cell(list(records)).values(), key=lambda r: r.number):
        cells = groups.setdefault((r.backbone, r.arm), _Cells(dict(r.arm_params)))
        if r.complete:
            cells.complete.append(r)
        elif r.state == "FAIL":
            cells.failed += 1
    return groups


def _values(cells: _Cells, metric: str) -> dict[int, float]:
    out = {}
    for r in cells.complete:
        value = r.value if metric == "value" else r.metrics.get(metric)
        if value is not None and math.isfinite(float(value)):
            out[r.seed] = float(value)
    return out


def _first_metric(cells: _Cells, key: str) -> Any:
    return next((r.metrics[key] for r in cells.complete if r.metrics.get(key) is not None), None)


def _mean(values: Iterable[float]) -> float | None:
    values = list(values)
    return sum(values) / len(values) if values else None


def build_table(spec: Mapping[str, Any], records: Sequence[TrialRecord], metric: str = "top1",
                baseline: str | None = None, test: str = "t", bootstrap: bool = False,
                layout: str | None = None, confidence: float = 0.95) -> Table:
    """The results of a study as a ``Table``: one row per arm per backbone.

    ``spec``: the study spec dict (user attribute ``ecasweep_spec``); ``records``: its trials
    (``results.read_records``). ``baseline`` (default: the spec's) is the arm ``delta`` and ``p`` refer
    to, on the same backbone; ``test``: ``"t"`` or ``"wilcoxon"`` (see ``stats.compare``);
    ``layout`` overrides the spec's. Arms without complete trials still get a row (``n = 0``).

    >>> table = build_table(spec, records, metric="top1")  # doctest: +SKIP
    >>> [(r.label, r.n, round(r.mean, 2)) for r in table.rows]  # doctest: +SKIP
    [('Vanilla', 3, 91.23), ('ECA (k=3)', 3, 91.61)]
    """
    if metric not in METRICS:
        raise EcasweepError(f"unknown metric {metric!r}; expected one of: {', '.join(METRICS)}")
    if test not in stats.TESTS:
        raise EcasweepError(f"unknown test {test!r}; expected one of: {', '.join(stats.TESTS)}")
    layout = layout or spec.get("layout") or "table2"
    if layout not in LAYOUTS:
        raise EcasweepError(f"unknown layout {layout!r}; expected one of: {', '.join(LAYOUTS)}")
    reference = paper_reference()
    groups = _group(spec, records)
    arms = list(dict.fromkeys(arm for _, arm in groups))
    baseline = baseline if baseline is not None else (spec.get("baseline") or None)
    if baseline is not None and baseline not in arms:
        raise EcasweepError(f"baseline arm {baseline!r} is not in the study; arms: {', '.join(arms)}")
    planned = int(spec.get("seeds") or 0)
    lower = metric == "loss"

    rows: list[Row] = []
    values: dict[tuple[str, str], dict[int, float]] = {}
    for (backbone, arm), cells in groups.items():
        vals = values[(backbone, arm)] = _values(cells, metric)
        s = stats.summarize_arm(list(vals.values()), confidence, bootstrap)
        ks = _first_metric(cells, "kernel_sizes")
        rows.append(Row(
            label=arm_label(cells.params, ks), backbone=backbone, arm=arm, params=cells.params,
            formula=_formula(cells.params, reference), kernel_sizes=ks,
            attention_params=_first_metric(cells, "attention_params"),
            total_params=_first_metric(cells, "total_params"), flops=_first_metric(cells, "flops"),
            n=s.n, planned=planned, failed=cells.failed, mean=s.mean, std=s.std, ci_low=s.ci_low,
            ci_high=s.ci_high, boot_low=s.boot_low, boot_high=s.boot_high,
            top5_mean=_mean(_values(cells, "top5").values()), objective=_mean(_values(cells, "value").values()),
            paper=_paper_top(cells.params, metric, reference), paper_method=_paper_method(cells.params)))

    backbones = list(dict.fromkeys(r.backbone for r in rows))
    power = []
    for backbone in backbones:
        on = [r for r in rows if r.backbone == backbone]
        _against_baseline(on, values, baseline, test, confidence)
        _mark_best(on, values, test, confidence, lower)
        pair = _closest_pair(on, values)
        if pair:
            power.append(pair)
    if layout == "search":
        direction = -1 if spec.get("direction", "maximize") == "maximize" else 1
        rows.sort(key=lambda r: (r.objective is None, direction * (r.objective or 0.0)))
    devices = sorted({str(r.metrics["device"]) for c in groups.values() for r in c.complete
                      if r.metrics.get("device")})
    failed = sum(c.failed for c in groups.values())
    table = Table(study=str(spec.get("name", "")), metric=metric, layout=layout, baseline=baseline, test=test,
                  rows=rows, caption="", backbones=backbones, planned=planned, failed=failed,
                  devices=devices, power=power, confidence=confidence, lower_is_better=lower)
    table.caption = _caption(spec, table)
    return table


def _against_baseline(rows: list[Row], values: Mapping[tuple[str, str], dict[int, float]],
                      baseline: str | None, test: str, confidence: float) -> None:
    base = next((r for r in rows if r.arm == baseline), None)
    if base is None:
        return
    others = [r for r in rows if r is not base]
    for r in others:
        c = stats.compare(values[(r.backbone, r.arm)], values[(base.backbone, base.arm)], test, confidence)
        r.delta, r.delta_ci_low, r.delta_ci_high, r.p_raw = c.delta, c.ci_low, c.ci_high, c.p_value
    for r, p in zip(others, stats.holm([r.p_raw for r in others])):
        r.p_value = p
    base.delta = 0.0 if base.n else None


def _mark_best(rows: list[Row], values: Mapping[tuple[str, str], dict[int, float]], test: str,
               confidence: float, lower: bool) -> None:
    best_arm = stats.best_arm({r.arm: r.mean for r in rows}, lower)
    if best_arm is None:
        return
    best = next(r for r in rows if r.arm == best_arm)
    others = [r for r in rows if r is not best and r.n]
    raw = [stats.compare(values[(r.backbone, r.arm)], values[(best.backbone, best.arm)], test, confidence).p_value
           for r in others]
    adjusted = stats.holm(raw)
    tied = stats.tied_with_best({r.arm: p for r, p in zip(others, adjusted)})
    for r, p in zip(others, adjusted):
        r.p_vs_best, r.tied_with_best = p, tied[r.arm]
    best.best = best.tied_with_best = True


def _closest_pair(rows: list[Row], values: Mapping[tuple[str, str], dict[int, float]]) -> dict[str, Any] | None:
    """The two arms whose means are closest (and not equal), with the seeds a paired test would need."""
    candidates = []
    for i, a in enumerate(rows):
        for b in rows[i + 1:]:
            if a.n and b.n and a.mean != b.mean:
                c = stats.compare(values[(a.backbone, a.arm)], values[(b.backbone, b.arm)])
                if c.delta is not None and c.sd_diff is not None:
                    candidates.append((abs(c.delta), a, b, c))
    if not candidates:
        return None
    _, a, b, c = min(candidates, key=lambda t: t[0])
    return {"backbone": a.backbone, "arm_a": a.arm, "arm_b": b.arm, "label_a": a.label, "label_b": b.label,
            "delta": c.delta, "sd_diff": c.sd_diff, "seeds": stats.seeds_needed(c.delta, c.sd_diff)}


def _caption(spec: Mapping[str, Any], table: Table) -> str:
    data, train = spec.get("data", {}), spec.get("train", {})
    dataset = str(data.get("dataset", "?")) + (f" (subset {data['subset']})" if data.get("subset") else "")
    metric = {"top1": "top-1 accuracy (%)", "top5": "top-5 accuracy (%)", "loss": "test loss"}[table.metric]
    test = {"t": "paired t-test", "wilcoxon": "Wilcoxon signed-rank test"}[table.test]
    parts = [f"{table.study}: {metric} on {dataset}, {', '.join(table.backbones) or 'no backbone'}, "
             f"profile {spec.get('profile', '?')}, {train.get('epochs', '?')} epochs, "
             f"{table.planned} seeds planned; device(s): {', '.join(table.devices) or 'none recorded'}.",
             f"mean ± std (ddof 1) over complete seeds; {int(table.confidence * 100)}% t intervals."]
    if table.baseline is not None:
        base = next((r.label for r in table.rows if r.arm == table.baseline), table.baseline)
        parts.append(f"Δ and p vs {base} on the same backbone: {test} over the seeds both arms ran "
                     "(Welch's t-test when fewer than 2 are shared); p is Holm-adjusted over the comparisons "
                     "on each backbone (raw p kept as p_raw).")
    parts.append(f"Tied: Holm-adjusted p >= {stats.ALPHA} vs the best arm of the backbone "
                 f"({'lowest' if table.lower_is_better else 'highest'} mean).")
    partial = sum(1 for r in table.rows if r.n < table.planned)
    if partial:
        parts.append(f"Partial: {partial} of {len(table.rows)} rows have fewer than {table.planned} seeds.")
    parts.append(f"{table.failed} failed cell{'s' if table.failed != 1 else ''}.")
    for p in table.power:
        where = f" on {p['backbone']}" if len(table.backbones) > 1 else ""
        if p["seeds"] is None:
            parts.append(f"{p['label_a']} vs {p['label_b']}{where} (the closest pair) would not be resolved "
                         "with any practical number of seeds at the observed spread.")
        else:
            parts.append(f"About {p['seeds']} seeds per arm would resolve {p['label_a']} vs {p['label_b']}{where} "
                         f"(the closest pair) at the observed spread (paired t, α={stats.ALPHA}, power 0.8).")
    if any(r.paper_method in ("SE-GC1", "SE-GC2", "SE-GC3") for r in table.rows):
        parts.append("SE-GC (G=16), (S=16), (S=8) are the paper's SE-GC1, SE-GC2, SE-GC3.")
    if any(r.paper is not None for r in table.rows):
        ref = paper_reference()["figure4"]
        parts.append(f"{PAPER_COLUMN}: Wang et al., CVPR 2020, Table 2 (adaptive k: Table 3; ResNet-101: "
                     f"adaptive {ref['resnet101_adaptive']}, SE {ref['resnet101_se']}), "
                     "a reference for a different setting, not a prediction for this one.")
    return " ".join(parts)


# Formatting helpers ------------------------------------------------------------------------------

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
    return "best" if r.best else ("tied" if r.tied_with_best else "")


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
    return key + secondary


# Renderers ---------------------------------------------------------------------------------------

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
                  "≥": r"$\geq$", "->": r"$\to$", "<": r"$<$"}


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


# Rich ----------------------------------------------------------------------------------------------

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
    Backbones that do not fit side by side at ``width`` go to tables of their own."""
    from rich import box
    from rich.table import Table as RichTable
    from rich.text import Text

    d = _digits(table.metric)
    arms = list(dict.fromkeys(r.arm for r in table.rows))
    by = {(r.backbone, r.arm): r for r in table.rows}
    ecas = [a for a in arms if any(r.params.get("attention") in KERNEL_ATTENTIONS for r in table.rows if r.arm == a)]
    order = ecas + [a for a in arms if a not in ecas]
    group_width = 40 if table.baseline is not None else 28
    per_table = max(1, (width - 26) // group_width)
    out: list[Any] = []
    for start in range(0, len(table.backbones), per_table):
        backbones = table.backbones[start:start + per_table]
        rich = RichTable(title=f"{table.study} — {table.metric} — {', '.join(backbones)}", box=box.SIMPLE_HEAD,
                         pad_edge=False)
        rich.add_column("k / variant", overflow="fold", min_width=16)
        for b in backbones:
            short = b if len(backbones) == 1 else f"{b}: n"
            rich.add_column(short if len(backbones) > 1 else "n", justify="right", no_wrap=True)
            rich.add_column("mean ± std", justify="right", no_wrap=True)
            rich.add_column("", no_wrap=True)
            if table.baseline is not None:
                rich.add_column("Δ", justify="right", no_wrap=True)
                rich.add_column("p", justify="right", no_wrap=True)
        paper = width >= 26 + group_width * len(backbones) + 16
        if paper:
            rich.add_column("paper R-50", justify="right")
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
                    cells += [""] * (5 if table.baseline is not None else 3)
                    continue
                mark = " *" if r.best else (" ≈" if r.tied_with_best else "  ")
                cells += [f"{r.n}/{r.planned}" + (f" ✗{r.failed}" if r.failed else ""), _mean_std(r, d) + mark,
                          _bar(r.mean, lo, hi, 8)]
                if table.baseline is not None:
                    cells += [_fmt(r.delta, d, sign=True), _fmt_p(r.p_value)]
            if paper:
                cells.append(_fmt(first.paper, 2))
            rich.add_row(*cells)
        out.append(rich)
    out.append(Text("* best, ≈ tied with the best; bars scaled between the lowest and highest mean of each backbone."))
    return out


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
                mark = " *" if r is not None and r.best else (" ≈" if r is not None and r.tied_with_best else "")
                cells.append("" if r is None else f"{_mean_std(r, d)}{mark}\nn {_n(r)}"
                             + (f"  k {_ks(r.kernel_sizes)}" if r.kernel_sizes else ""))
            rich.add_row(*cells)
        out.append(rich)
        others = [r for r in rows if r not in grid]
        if others:
            sub = Table(**{**table.__dict__, "rows": others, "backbones": [b], "layout": "table2"})
            out += _rich_flat(sub, width)
    return out


# Comparing two arms --------------------------------------------------------------------------------

def _find_arm(groups: Mapping[tuple[str, str], _Cells], wanted: str) -> str:
    arms = list(dict.fromkeys(arm for _, arm in groups))
    if wanted in arms:
        return wanted
    by_label = {arm_label(c.params, _first_metric(c, "kernel_sizes")): arm for (_, arm), c in groups.items()}
    by_label.update({arm_label(c.params): arm for (_, arm), c in groups.items()})
    if wanted in by_label:
        return by_label[wanted]
    raise EcasweepError(f"no arm {wanted!r} in the study; arms: {', '.join(arms)}")


def compare_arms(spec: Mapping[str, Any], records: Sequence[TrialRecord], arm_a: str, arm_b: str,
                 backbone: str | None = None, metric: str = "top1", test: str = "t") -> dict[str, Any]:
    """Arms ``arm_a`` and ``arm_b`` (ids or labels) seed by seed on one backbone, with the test, the
    interval of the difference and P(A beats B on a new seed) (``stats.compare``).

    >>> compare_arms(spec, records, "eca-k3", "eca-k5")["p_a_beats_b"]  # doctest: +SKIP
    0.81
    """
    if metric not in METRICS:
        raise EcasweepError(f"unknown metric {metric!r}; expected one of: {', '.join(METRICS)}")
    groups = _group(spec, records)
    a, b = _find_arm(groups, arm_a), _find_arm(groups, arm_b)
    both = [bb for bb in dict.fromkeys(k[0] for k in groups) if (bb, a) in groups and (bb, b) in groups]
    if backbone is None:
        if len(both) != 1:
            raise EcasweepError(f"arms {a!r} and {b!r} ran on several backbones ({', '.join(both)}): pass a backbone"
                                if both else f"arms {a!r} and {b!r} share no backbone")
        backbone = both[0]
    elif backbone not in both:
        raise EcasweepError(f"backbone {backbone!r} has not both arms; backbones with both: {', '.join(both)}")
    va, vb = _values(groups[(backbone, a)], metric), _values(groups[(backbone, b)], metric)
    c = stats.compare(va, vb, test)
    side = lambda arm, v: {"arm": arm, "label": arm_label(groups[(backbone, arm)].params,  # noqa: E731
                                                           _first_metric(groups[(backbone, arm)], "kernel_sizes")),
                           **{k: getattr(stats.summarize_arm(list(v.values())), k) for k in ("n", "mean", "std")}}
    seeds = sorted(set(va) | set(vb))
    return {"study": str(spec.get("name", "")), "metric": metric, "backbone": backbone,
            "a": side(a, va), "b": side(b, vb),
            "seeds": [{"seed": s, "a": va.get(s), "b": vb.get(s),
                       "diff": va[s] - vb[s] if s in va and s in vb else None} for s in seeds],
            "test": c.test, "paired": c.paired, "n_pairs": c.n, "delta": c.delta, "ci_low": c.ci_low,
            "ci_high": c.ci_high, "confidence": c.confidence, "p_value": c.p_value, "p_a_beats_b": c.p_a_beats_b,
            "note": "P(A beats B) is the posterior-predictive probability that A's value exceeds B's on a new seed "
                    "(t-distribution on the paired differences; Welch approximation when unpaired)."}


def render_comparison(result: Mapping[str, Any], fmt: str = "rich") -> Any:
    """``compare_arms``'s result as ``rich``, ``markdown`` or ``json``."""
    if fmt == "json":
        return json.dumps(result, indent=2, ensure_ascii=False, allow_nan=False)
    d = _digits(result["metric"])
    a, b = result["a"], result["b"]
    rows = [[str(s["seed"]), _fmt(s["a"], d), _fmt(s["b"], d), _fmt(s["diff"], d, sign=True)] for s in result["seeds"]]
    ci = f"[{_fmt(result['ci_low'], d, True)}, {_fmt(result['ci_high'], d, True)}]" if result["ci_low"] is not None else "n/a"
    beats = "n/a" if result["p_a_beats_b"] is None else f"{result['p_a_beats_b']:.2f}"
    summary = (f"{a['label']} - {b['label']} on {result['backbone']} ({result['metric']}): "
               f"Δ = {_fmt(result['delta'], d, True) or 'n/a'}, {int(result['confidence'] * 100)}% CI {ci}, "
               f"{result['test']} p = {_fmt_p(result['p_value']) or 'n/a'} ({result['n_pairs']} pairs); "
               f"P(A beats B on a new seed) = {beats}.")
    headers = ["seed", a["label"], b["label"], "A - B"]
    if fmt == "markdown":
        esc = lambda s: str(s).replace("|", "\\|")  # noqa: E731
        lines = ["| " + " | ".join(map(esc, headers)) + " |", "|--:|--:|--:|--:|"]
        lines += ["| " + " | ".join(row) + " |" for row in rows]
        return "\n".join(lines) + f"\n\n{summary}\n"
    if fmt != "rich":
        raise EcasweepError(f"unknown format {fmt!r}; expected one of: rich, markdown, json")
    from rich.console import Group
    from rich.table import Table as RichTable
    from rich.text import Text
    t = RichTable(title=f"{result['study']}: {a['label']} vs {b['label']}")
    for h in headers:
        t.add_column(h, justify="right", overflow="fold")
    for row in rows:
        t.add_row(*row)
    return Group(t, Text(summary))


# Plots ---------------------------------------------------------------------------------------------

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
