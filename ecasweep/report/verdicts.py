"""The Claims table: each claim of a study on each backbone, with the paper's evidence, this study's
effect and the verdict of ``ecasweep.claims``, rendered as Rich, Markdown, CSV, JSON or LaTeX.

Example:
    >>> claims = build_claims(spec, records)  # doctest: +SKIP
    >>> [(r.words, r.backbone, r.verdict) for r in claims.rows][:1]  # doctest: +SKIP
    [('ECA beats SE (r=16) at every k', 'resnet-8', 'open')]

JSON schema (``render_claims(table, "json")``, schema id ``ecasweep.claims/1``)::

    {"schema": "ecasweep.claims/1", "study": str, "metric": "top1", "alpha": 0.05,
     "family": int,             # distinct hypotheses tested together (alpha is shared among them)
     "studies": [str],          # the studies whose claims are that family: this one, or those of a report
                                #   (``build_family``; ``table --claims --family``)
     "looks": [int],            # the seed counts at which verdicts are taken
     "design": str,             # how: "holm-power-0.7-after-8" (new studies), "bonferroni-even" (studies stored
                                #   before designs were named), ... (docs/claims.md)
     "caption": str,
     "rows": [{"words", "kind", "a", "b", "label_a", "label_b", "backbone": str, "margin": float,
               "paper": str,    # the paper's evidence: its figures for A and B where it has them, and words
               "paper_delta": float | null,   # the paper's A - B (ImageNet ResNet-50) where it has both
               "evidence": str, # the paper's evidence in words, as the study file states it
               "n": int,        # seeds both arms ran
               "effect", "ci_low", "ci_high": float | null,   # mean A - B, 95% t interval (pp)
               "low", "high": float | null,   # the decision interval over its looks, at the shares of
                                              #   alpha it holds (decided: its verdict's), see "level"
               "verdict": "supported" | "contradicted" | "open" | "same model",
               "decided_at": int | null,      # the look (seeds) that decided it
               "seeds_needed": int | null,    # open: the look that would decide it at the observed spread
               "level": float | null,         # the two-sided error rate [low, high] was computed at
               "sim_low", "sim_high": float | null}]}  # the claim's interval at its initial share of
                                              #   alpha: simultaneous over the study's claims at 1 - alpha
"""

from __future__ import annotations

import csv
import io
import json
import math
from dataclasses import asdict, dataclass, field, fields
from typing import Any, Mapping, Sequence

import numpy as np

from ..stats import sequential as decide
from ..stats import summary as stats
from ..errors import EcasweepError
from ..store.results import TrialRecord
from .labels import _paper_top, arm_label, paper_reference
from .tables import _group, _values

SCHEMA = "ecasweep.claims/1"
METRIC = "top1"  # the paper's claims are about top-1 accuracy
#: the verdict of a row whose two arms build one model on its backbone (``StudySpec.aliases``)
SAME_MODEL = "same model"


@dataclass
class ClaimRow:
    """One claim on one backbone. Field meanings: see the module docstring (JSON schema)."""

    words: str
    kind: str
    a: str
    b: str
    label_a: str
    label_b: str
    backbone: str
    margin: float
    paper: str
    paper_delta: float | None
    evidence: str
    n: int
    effect: float | None
    ci_low: float | None
    ci_high: float | None
    low: float | None
    high: float | None
    verdict: str
    decided_at: int | None
    seeds_needed: int | None
    level: float | None = None
    sim_low: float | None = None
    sim_high: float | None = None


CLAIM_FIELDS = tuple(f.name for f in fields(ClaimRow))


@dataclass
class ClaimsTable:
    """A study's claims as plain values, ready to render."""

    study: str
    rows: list[ClaimRow]
    family: int
    caption: str = ""
    alpha: float = decide.ALPHA
    looks: list[int] = field(default_factory=lambda: list(decide.LOOKS))
    design: str = decide.LEGACY.name
    studies: list[str] = field(default_factory=list)  # the studies of a family that spans several

    def to_dict(self) -> dict[str, Any]:
        """The JSON document described in the module docstring."""
        return {"schema": SCHEMA, "study": self.study, "metric": METRIC, "alpha": self.alpha,
                "family": self.family, "studies": self.studies or [self.study], "looks": self.looks,
                "design": self.design, "caption": self.caption, "rows": [asdict(r) for r in self.rows]}


def _finite(x: Any) -> float | None:
    return float(x) if x is not None and math.isfinite(float(x)) else None


def _paper(claim: Mapping[str, Any], params: Mapping[str, Mapping[str, Any]],
           reference: Mapping[str, Any]) -> tuple[str, float | None]:
    tops = [_paper_top(params.get(claim[side], {}), METRIC, reference) for side in ("a", "b")]
    figures, delta = "", None
    if None not in tops:
        delta = round(tops[0] - tops[1], 2)
        figures = f"{tops[0]:.2f} vs {tops[1]:.2f} ({delta:+.2f}, ImageNet ResNet-50)"
    return "; ".join(part for part in (figures, claim.get("evidence", "")) if part), delta


def hypotheses(spec: Mapping[str, Any]) -> list[tuple[str, str, str, str, float]]:
    """The distinct hypotheses a study spec (dict) tests, each ``(backbone, a, b, kind, margin)`` with
    ``a`` and ``b`` the arms that build the two models (an alias is its arm), in table order; rows
    whose two arms build one model test nothing and are left out.

    >>> from ecasweep.spec import load_study
    >>> hyps = hypotheses(load_study("kernel-size").to_dict())
    >>> len(hyps), hyps[0]
    (22, ('resnet-8', 'eca(k=3)', 'se(r=16)', 'superiority', 0.0))
    """
    out: list[tuple[str, str, str, str, float]] = []
    for h in row_hypotheses(spec):
        if h[1] != h[2] and h not in out:
            out.append(h)
    return out


def row_hypotheses(spec: Mapping[str, Any]) -> list[tuple[str, str, str, str, float]]:
    """What each row of the study's Claims table tests, in row order (one row per claim per
    backbone): ``(backbone, a, b, kind, margin)`` with aliases resolved to their arm, so that rows
    testing one hypothesis give one tuple.
    """
    return [_hypothesis(spec, claim, backbone) for claim, backbone in _pairs(spec)]


def _pairs(spec: Mapping[str, Any]) -> list[tuple[Mapping[str, Any], str]]:
    return [(claim, backbone) for claim in list(spec.get("claims") or []) for backbone in spec.get("backbones", [])]


def _hypothesis(spec: Mapping[str, Any], claim: Mapping[str, Any], backbone: str) -> tuple[str, str, str, str, float]:
    """What a row tests: arms that share a model (aliases) are the same arm."""
    aliases = (spec.get("aliases") or {}).get(backbone, {})
    return backbone, aliases.get(claim["a"], claim["a"]), aliases.get(claim["b"], claim["b"]), claim["kind"], \
        float(claim["margin"])


def build_claims(spec: Mapping[str, Any], records: Sequence[TrialRecord], alpha: float = decide.ALPHA) -> ClaimsTable:
    """The claims of ``spec`` (a study spec dict) decided on ``records``, one row per claim per backbone.

    The study's distinct hypotheses are decided together (``stats.sequential.decide_family``) under the
    design the spec states; a spec stored without one is read under the legacy design
    (``bonferroni-even``), so that a study keeps the verdicts it had.
    """
    return build_family([(spec, records)], alpha)[0]


def build_family(studies: Sequence[tuple[Mapping[str, Any], Sequence[TrialRecord]]],
                 alpha: float = decide.ALPHA) -> list[ClaimsTable]:
    """The Claims tables of several studies (``(spec, records)`` each) whose claims are one family: the
    chance of any wrong verdict in all the tables together stays below ``alpha``, as a report that
    spans studies states it. Every distinct hypothesis of every study is a member (a hypothesis two
    studies share is a member twice, which only spends more); the family is decided by one Holm
    procedure when the studies share their design, so that α recycles across studies. Studies stored
    under different designs (a legacy study beside new ones) cannot be one Holm family: each is then
    its own family at a share of ``alpha`` in proportion to its hypotheses, and the shares add up to
    ``alpha`` (Bonferroni over the studies).

    >>> from ecasweep.spec import load_study
    >>> tables = build_family([(load_study(n).to_dict(), []) for n in ("kernel-size", "table2")])
    >>> [(t.study, t.family, t.studies) for t in tables]
    [('kernel-size', 36, ['kernel-size', 'table2']), ('table2', 36, ['kernel-size', 'table2'])]
    """
    studies = list(studies)
    designs = {decide.design_of(spec) for spec, _ in studies}
    if len(designs) > 1:
        sizes = [len(hypotheses(spec)) for spec, _ in studies]
        return [_decide([part], alpha * size / max(1, sum(sizes)))[0] for part, size in zip(studies, sizes)]
    return _decide(studies, alpha)


def _decide(studies: Sequence[tuple[Mapping[str, Any], Sequence[TrialRecord]]], alpha: float) -> list[ClaimsTable]:
    """The studies' hypotheses decided as one family under their (one) design."""
    design = decide.design_of(studies[0][0])
    parts = []  # per study: its groups, rows' (claim, backbone, hypothesis), distinct hypotheses, diffs
    for spec, records in studies:
        groups = _group(spec, records)
        pairs = [(claim, backbone, h) for (claim, backbone), h in zip(_pairs(spec), row_hypotheses(spec))]
        # A row whose two arms are one model has nothing to test; rows that test the same hypothesis
        # (an alias in place of its arm) have the same data and verdict, and are one member of the family.
        family = hypotheses(spec)
        parts.append((groups, pairs, family, [_diffs(groups, backbone, a, b) for backbone, a, b, _, _ in family]))
    diffs = [d for *_, ds in parts for _, d in ds]
    kinds = [h[3] for _, _, family, _ in parts for h in family]
    margins = [h[4] for _, _, family, _ in parts for h in family]
    decided = decide.decide_family(decide.look_stats(diffs, decide.LOOKS), kinds, margins, design, alpha)
    now = [stats.summarize_arm(d.tolist()) for d in diffs]
    need = decide.needed(np.array([np.nan if c.mean is None else c.mean for c in now]),
                         np.array([np.nan if c.std is None else c.std for c in now]),
                         np.array([d.size for d in diffs]), decided, kinds, margins, design)
    reference = paper_reference()
    names = [str(spec.get("name", "")) for spec, _ in studies]
    tables, offset = [], 0
    for (spec, _), (groups, pairs, family, _) in zip(studies, parts):
        params = {arm["id"]: {"attention": arm["attention"], **arm.get("kwargs", {})} for arm in spec.get("arms", [])}
        outcome = {h: offset + i for i, h in enumerate(family)}
        rows = [_row(c, b, groups, params, reference, decided, need, outcome.get(h), same_model=h[1] == h[2])
                for c, b, h in pairs]
        table = ClaimsTable(str(spec.get("name", "")), rows, len(kinds), alpha=alpha, design=design.name,
                            studies=names if len(studies) > 1 else [])
        table.caption = _caption(table)
        tables.append(table)
        offset += len(family)
    return tables


def _diffs(groups, backbone: str, a: str, b: str) -> tuple[list[int], np.ndarray]:
    """The seeds both arms ran, and the paired differences A - B over them in seed order."""
    cells = [groups.get((backbone, arm)) for arm in (a, b)]
    by_seed = [_values(c, METRIC) if c is not None else {} for c in cells]
    seeds = sorted(set(by_seed[0]) & set(by_seed[1]))
    return seeds, np.array([by_seed[0][s] - by_seed[1][s] for s in seeds], dtype=float)


def _row(claim: Mapping[str, Any], backbone: str, groups, params, reference, decided, need, h: int | None,
         same_model: bool = False) -> ClaimRow:
    kind, margin = claim["kind"], float(claim["margin"])
    seeds, d = _diffs(groups, backbone, claim["a"], claim["b"])
    if same_model:  # one model: its "difference" is zero by construction, not an effect
        d = d[:0]
    effect = float(d.mean()) if d.size else None
    c = stats.summarize_arm(d.tolist())
    verdict, decided_at, needed = SAME_MODEL, None, None
    low = high = level = sim_low = sim_high = None
    if h is not None:
        verdict = decide.VERDICTS[int(decided.verdict[h])]
        low, high, sim_low, sim_high = (_finite(x[h]) for x in (decided.low, decided.high, decided.sim_low,
                                                                 decided.sim_high))
        level = float(decided.level[h])
        if verdict in ("supported", "contradicted"):
            decided_at = int(decided.seeds[h])
        elif int(need[h]):
            needed = int(need[h])
    paper, paper_delta = _paper(claim, params, reference)
    return ClaimRow(
        words=claim.get("words", ""), kind=kind, a=claim["a"], b=claim["b"],
        label_a=arm_label(params.get(claim["a"], {})), label_b=arm_label(params.get(claim["b"], {})),
        backbone=backbone, margin=margin, paper=paper, paper_delta=paper_delta,
        evidence=claim.get("evidence", ""), n=len(seeds), effect=effect,
        ci_low=c.ci_low, ci_high=c.ci_high, low=low, high=high, verdict=verdict,
        decided_at=decided_at, seeds_needed=needed, level=level, sim_low=sim_low, sim_high=sim_high)


def _caption(table: ClaimsTable) -> str:
    looks = ", ".join(map(str, table.looks))
    counts = {v: sum(r.verdict == v for r in table.rows) for v in ("supported", "contradicted", "open", SAME_MODEL)}
    same = (f"; {counts[SAME_MODEL]} compare an arm with itself (aliases: one model on that backbone) and are not "
            f"tested") if counts[SAME_MODEL] else ""
    return (f"{table.study}: {counts['supported']} supported, {counts['contradicted']} contradicted, "
            f"{counts['open']} open of {len(table.rows)} (claim, backbone) pairs{same}. Effect: mean paired difference "
            f"A - B in top-1 points over the seeds both arms ran, with its 95% t interval. Verdicts come from "
            f"a group-sequential design ({_design_words(table)}; looks at {looks} seeds), so the chance of any wrong "
            f"verdict in the {_scope(table)} stays below {table.alpha:g} however many seeds are added (docs/claims.md). "
            "Open: the seeds at which it would be decided if the observed effect and spread held.")


def _scope(table: ClaimsTable) -> str:
    """Where the error guarantee holds: the study, or the studies of a family that spans several."""
    return f"studies {', '.join(table.studies)} together" if table.studies else "study"


def _design_words(table: ClaimsTable) -> str:
    procedure, _, spending = table.design.partition("-")
    spent = "split evenly over the looks" if spending == "even" else f"spent over the looks by the {spending} function"
    if procedure == "holm":
        return (f"design {table.design}: α = {table.alpha:g} over {table.family} distinct hypotheses by Holm's "
                f"procedure per direction of verdict, a decided claim's share passing to the open ones, each "
                f"share {spent}")
    return f"design {table.design}: each distinct hypothesis spends α = {table.alpha:g}/{table.family}, {spent}"


# Rendering -------------------------------------------------------------------------------------------

def _num(x: float | None, sign: bool = False) -> str:
    return "" if x is None else (f"{x:+.2f}" if sign else f"{x:.2f}")


def _effect(r: ClaimRow) -> str:
    if r.effect is None:
        return ""
    ci = f" [{_num(r.ci_low, True)}, {_num(r.ci_high, True)}]" if r.ci_low is not None else ""
    return _num(r.effect, True) + ci


def _verdict(r: ClaimRow) -> str:
    if r.verdict == SAME_MODEL:
        return "same model (alias)"
    if r.verdict != "open":
        return f"{r.verdict} ({r.decided_at} seeds)"
    if r.seeds_needed is not None:
        return f"open (~{r.seeds_needed} seeds)"
    return "open (needs 2 seeds)" if r.n < 2 else f"open (> {decide.LOOKS[-1]} seeds)"


def _claim(r: ClaimRow) -> str:
    return f"{r.words}: {_pair(r)}" if r.words else _pair(r)


COLUMNS = (("claim", _claim), ("backbone", lambda r: r.backbone), ("paper", lambda r: r.paper),
           ("effect [95% CI]", _effect), ("n", lambda r: str(r.n)), ("verdict", _verdict))


def render_claims(table: ClaimsTable, fmt: str = "rich") -> Any:
    """``table`` as ``rich`` (a renderable), or a string for ``markdown``, ``csv``, ``json``, ``latex``."""
    renderers = {"rich": _rich, "markdown": _markdown, "csv": _csv, "latex": _latex,
                 "json": lambda t: json.dumps(t.to_dict(), indent=2, ensure_ascii=False, allow_nan=False)}
    if fmt not in renderers:
        raise EcasweepError(f"unknown format {fmt!r}; expected one of: {', '.join(renderers)}")
    return renderers[fmt](table)


def _csv(table: ClaimsTable) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(CLAIM_FIELDS)
    for r in table.rows:
        writer.writerow(["" if v is None else v for v in (getattr(r, f) for f in CLAIM_FIELDS)])
    return out.getvalue()


def _markdown(table: ClaimsTable) -> str:
    esc = lambda s: str(s).replace("|", "\\|")  # noqa: E731
    lines = ["| " + " | ".join(h for h, _ in COLUMNS) + " |", "|---|---|---|--:|--:|---|"]
    lines += ["| " + " | ".join(esc(get(r)) for _, get in COLUMNS) + " |" for r in table.rows]
    return "\n".join(lines) + f"\n\n{table.caption}\n"


def _latex(table: ClaimsTable) -> str:
    from .render import latex_escape

    lines = [r"\begin{table}", r"\centering", r"\begin{tabular}{p{5cm}lp{3.5cm}rrl}", r"\toprule",
             " & ".join(latex_escape(h) for h, _ in COLUMNS) + r" \\", r"\midrule"]
    lines += [" & ".join(latex_escape(get(r)) for _, get in COLUMNS) + r" \\" for r in table.rows]
    lines += [r"\bottomrule", r"\end{tabular}", rf"\caption{{{latex_escape(table.caption)}}}", r"\end{table}"]
    return "\n".join(lines) + "\n"


def _pair(r: ClaimRow) -> str:
    return {"superiority": f"{r.label_a} > {r.label_b}",
            "non-inferiority": f"{r.label_a} > {r.label_b} − {r.margin:g}",
            "equivalence": f"|{r.label_a} − {r.label_b}| < {r.margin:g}"}[r.kind]


def _rich(table: ClaimsTable) -> Any:
    """One section per declared claim (its words and the paper's evidence in words), one line per
    pair of arms and backbone: the paper's difference, this study's effect, n and the verdict."""
    return _RichClaims(table)


class _RichClaims:
    """The Rich claims table, laid out for the console's width.

    Wide: one table, a heading row per declared claim. Below 120 columns: the header, then per
    declared claim its words and evidence across the whole width and its rows in a table of the
    same column widths, with the verdict and the interval on a second line of their row, so that
    no number is broken mid-interval and the pair of arms gets the rest of an 80-column terminal.
    """

    _STYLE = {"supported": "green", "contradicted": "red", "open": "yellow", SAME_MODEL: "dim"}

    def __init__(self, table: ClaimsTable) -> None:
        self.table = table
        self.backbones = len({r.backbone for r in table.rows}) > 1

    def __rich_console__(self, console: Any, options: Any) -> Any:
        from rich.text import Text

        if options.max_width < 120:
            yield from self._sections()
        else:
            yield self._table()
        yield Text(self.table.caption, style="dim")

    def _cells(self, r: ClaimRow, narrow: bool) -> list[Any]:
        from rich.markup import escape
        from rich.padding import Padding

        verdict, effect = _verdict(r), _effect(r)
        if narrow:
            verdict, effect = verdict.replace(" (", "\n(", 1), effect.replace(" [", "\n[", 1)
        cells = [Padding(escape(_pair(r)), (0, 0, 0, 2))] + ([r.backbone] if self.backbones else [])
        return cells + [escape(verdict), _num(r.paper_delta, True), escape(effect), str(r.n)]

    def _columns(self) -> list[str]:
        """The column names after ``claim``: the text columns, then three numbers (right-aligned)."""
        return [*(["backbone"] if self.backbones else []), "verdict", "paper Δ", "effect [95% CI]", "n"]

    def _new_table(self, title: str | None = None, widths: Sequence[int] | None = None,
                   header: bool = True, edge: bool = True) -> Any:
        from rich import box
        from rich.table import Table as RichTable

        out = RichTable(title=title, box=box.SIMPLE_HEAD, pad_edge=False, expand=True, show_header=header,
                        show_edge=edge, padding=(0, 1), collapse_padding=True)
        out.add_column("claim", ratio=1)
        names = self._columns()
        for i, name in enumerate(names):
            out.add_column(name, justify="right" if i >= len(names) - 3 else "left", no_wrap=True,
                           width=None if widths is None else widths[i])
        return out

    def _table(self) -> Any:
        from rich.markup import escape

        out = self._new_table(f"{self.table.study} — claims")
        heading = None
        for r in self.table.rows:
            if (r.words, r.evidence) != heading:
                heading = (r.words, r.evidence)
                out.add_row(f"[bold]{escape(r.words)}[/]" + (f" [dim]({escape(r.evidence)})[/]" if r.evidence else ""))
            out.add_row(*self._cells(r, narrow=False), style=self._STYLE[r.verdict])
        return out

    def _sections(self) -> Any:
        from rich.markup import escape
        from rich.text import Text

        rows = [self._cells(r, narrow=True) for r in self.table.rows]  # row[0], the pair, wraps
        widths = [max([len(name), *(len(line) for row in rows for line in row[i].split("\n"))])
                  for i, name in enumerate(self._columns(), start=1)]
        yield self._new_table(f"{self.table.study} — claims", widths, edge=False)
        heading, section = None, None
        for r, cells in zip(self.table.rows, rows):
            if (r.words, r.evidence) != heading:
                if section is not None:
                    yield section
                heading = (r.words, r.evidence)
                yield Text.from_markup(f"[bold]{escape(r.words)}[/]" + (f" [dim]({escape(r.evidence)})[/]"
                                                                        if r.evidence else ""))
                section = self._new_table(widths=widths, header=False, edge=False)
            section.add_row(*cells, style=self._STYLE[r.verdict])
        if section is not None:
            yield section


def render_with_claims(rendered: Any, table: ClaimsTable, fmt: str, claims_only: bool = False) -> Any:
    """A study table already rendered as ``fmt``, followed by its claims in the same format: a Rich
    group, Markdown or LaTeX appended, the JSON document with a ``claims`` key. CSV holds one table:
    the rows, or with ``claims_only`` the claims (as every format does with it)."""
    if claims_only:
        return render_claims(table, fmt)
    if not table.rows or fmt == "csv":
        return rendered
    if fmt == "json":
        return json.dumps({**json.loads(rendered), "claims": table.to_dict()}, indent=2, ensure_ascii=False,
                          allow_nan=False)
    if fmt == "rich":
        from rich.console import Group

        return Group(rendered, render_claims(table, "rich"))
    return rendered.rstrip("\n") + "\n\n" + render_claims(table, fmt)
