"""Two arms side by side, seed by seed."""

from __future__ import annotations

import json
from typing import Any, Mapping, Sequence

from ..stats import summary as stats
from ..errors import EcasweepError
from ..store.results import TrialRecord
from .labels import arm_label
from .render import _digits, _fmt, _fmt_p
from .tables import METRICS, _Cells, _first_metric, _group, _values


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
    if backbone is None:  # the study's first backbone that ran both arms
        if not both:
            raise EcasweepError(f"arms {a!r} and {b!r} share no backbone")
        order = list(spec.get("backbones", []))
        backbone = min(both, key=lambda bb: order.index(bb) if bb in order else len(order))
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
