"""A study's results as a plain ``Table``: one ``Row`` per arm per backbone, with its statistics over seeds (``ecasweep.stats``) and its caption."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field, fields
from typing import Any, Iterable, Mapping, Sequence

from ..stats import summary as stats
from ..errors import EcasweepError
from ..spec.schema import LAYOUTS  # the layouts a study may name are the ones a table draws
from ..store.results import TrialRecord, latest_by_cell
from . import efficiency
from .labels import _formula, _paper_method, _paper_top, arm_label, paper_reference


METRICS = ("top1", "top5", "loss")
SCHEMA = "ecasweep.table/1"
PAPER_COLUMN = "paper (ImageNet, ResNet-50)"


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
    untested: bool = False  # no test against the best was possible (fewer than 2 seeds): neither tied nor not
    paper: float | None = None
    paper_method: str | None = None
    # layout "table3" only (report.efficiency): speed measured in the trials, the paper's Table 3 row
    train_images_per_s: float | None = None
    infer_images_per_s: float | None = None
    train_overhead: float | None = None
    infer_overhead: float | None = None
    paper_table3: dict[str, Any] | None = None
    values: dict[str, float] = field(default_factory=dict)  # the metric per seed ("0", "1", ...)


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


@dataclass
class _Cells:
    """The counting trials of one arm on one backbone."""

    params: dict[str, Any]
    complete: list[TrialRecord] = field(default_factory=list)
    failed: int = 0
    alias_of: str | None = None  # the arm whose trials these are (the same model), counted there


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
    for backbone, aliases in (spec.get("aliases") or {}).items():
        for alias, arm in aliases.items():
            if (backbone, alias) in groups and (backbone, arm) in groups:
                source = groups[(backbone, arm)]
                groups[(backbone, alias)].complete, groups[(backbone, alias)].failed = source.complete, source.failed
                groups[(backbone, alias)].alias_of = arm
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

    ``spec``: the study spec dict (``spec_attrs.read_spec`` of the study's user attributes);
    ``records``: its trials (``results.read_records``). ``baseline`` (default: the spec's) is the
    arm ``delta`` and ``p`` refer to, on the same backbone; ``test``: ``"t"`` or ``"wilcoxon"`` (see ``stats.compare``);
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
            paper=_paper_top(cells.params, metric, reference), paper_method=_paper_method(cells.params),
            values={str(seed): v for seed, v in sorted(vals.items())}))

    if layout == "table3":
        efficiency.add_efficiency(rows, {key: cells.complete for key, cells in groups.items()}, baseline, reference)
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
    failed = sum(c.failed for c in groups.values() if c.alias_of is None)
    table = Table(study=str(spec.get("name", "")), metric=metric, layout=layout, baseline=baseline, test=test,
                  rows=rows, caption="", backbones=backbones, planned=planned, failed=failed,
                  devices=devices, power=power, confidence=confidence, lower_is_better=lower)
    table.caption = _caption(spec, table)
    if layout == "table3":
        table.caption += " " + efficiency.caption(devices, spec.get("train", {}).get("eval_batch_size", "?"))
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
        r.p_vs_best, r.tied_with_best, r.untested = p, tied[r.arm] and p is not None, p is None
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


def _plural(n: Any, word: str) -> str:
    return f"{n} {word}" + ("" if n == 1 else "s")


def _caption(spec: Mapping[str, Any], table: Table) -> str:
    data, train = spec.get("data", {}), spec.get("train", {})
    dataset = str(data.get("dataset", "?")) + (f" (subset {data['subset']})" if data.get("subset") else "")
    metric = {"top1": "top-1 accuracy (%)", "top5": "top-5 accuracy (%)", "loss": "test loss"}[table.metric]
    test = {"t": "paired t-test", "wilcoxon": "Wilcoxon signed-rank test"}[table.test]
    parts = [f"{table.study}: {metric} on {dataset}, {', '.join(table.backbones) or 'no backbone'}, "
             f"profile {spec.get('profile', '?')}, {_plural(train.get('epochs', '?'), 'epoch')}, "
             f"{_plural(table.planned, 'seed')} planned; device(s): {', '.join(table.devices) or 'none recorded'}.",
             f"mean ± std (ddof 1) over complete seeds; {int(table.confidence * 100)}% t intervals."]
    if table.baseline is not None:
        base = next((r.label for r in table.rows if r.arm == table.baseline), table.baseline)
        parts.append(f"Δ and p vs {base} on the same backbone: {test} over the seeds both arms ran "
                     "(Welch's t-test when fewer than 2 are shared); p is Holm-adjusted over the comparisons "
                     "on each backbone (raw p kept as p_raw).")
    parts.append(f"Tied: Holm-adjusted p >= {stats.ALPHA} vs the best arm of the backbone "
                 f"({'lowest' if table.lower_is_better else 'highest'} mean).")
    if any(r.untested for r in table.rows):
        parts.append("Untested: too few seeds (or none shared with the best) for a test; neither tied nor worse.")
    for backbone, aliases in (spec.get("aliases") or {}).items():
        labels = {r.arm: r.label for r in table.rows if r.backbone == backbone}
        for alias, arm in aliases.items():
            parts.append(f"{labels.get(alias, alias)} is {labels.get(arm, arm)} on {backbone} (the same model): "
                         "trained once, shown under both labels.")
    if spec.get("extra_seeds"):
        parts.append("Seeds were added to some arms by run --until-resolved, chosen from the results so far: "
                     "the p-values and ties here are descriptive; the claims' verdicts keep their error rate "
                     "under that adaptivity (docs/claims.md).")
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
