"""``ecasweep reproduce``: the paper's ablation studies as one budgeted run and one report.

The planned cells of every study come first (``runner.run``, study by study; a study already run is
resumed, so the same command again picks up where a killed one stopped). The rest of the budget goes
to rounds of seeds where claims are still open, across all studies at once (their claims are one
family, decided as the report decides them: ``report.verdicts.build_family``): each candidate round (the
next look of a study's open claims, as ``--until-resolved`` plans it) is scored by how much of the
way to a verdict it takes its claims, per minute of estimated compute, and the best round that fits
the budget runs next. The report (``report.document``) is written after every study and every round,
each file replaced whole, so a killed run leaves a valid report of what had finished.

Example:
    >>> reproduce(["kernel-size"], budget_s=3600, output=Path("report"))   # doctest: +SKIP
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

from ..errors import EcasweepError
from ..report.document import StudyResults, build_report, check_output, write_report
from ..report.verdicts import ClaimsTable, build_family
from ..spec import load_study
from ..stats.sequential import LOOKS, design_of, plan_round, round_looks
from . import runner
from .estimate import estimate_seconds
from .rounds import _extra_override
from .slots import plan_slots

#: the studies of the paper's ablations: Figure 4, Table 2, Eq. 12 (gamma, beta) and Table 3
PAPER_STUDIES = ("kernel-size", "table2", "gamma-beta", "methods")


@dataclass
class Reproduction:
    """How a reproduction ended: why, after how many rounds, and the report's files."""

    reason: str
    rounds: int
    seconds: float
    report: list[Path]
    studies: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)  # studies whose planned cells did not fit the budget


@dataclass(frozen=True)
class Candidate:
    """One possible round: a study's next look for its open claims."""

    study: str
    extra: dict[str, int]
    cells: int
    seconds: float
    progress: float  # the share of the way to a verdict it takes the claims, summed over claims

    @property
    def score(self) -> float:
        return self.progress / max(self.seconds, 1.0)


def parse_studies(text: str | None, option: str = "--studies") -> list[str]:
    """``--studies a,b`` -> ``["a", "b"]`` (the paper's four when None), each named once; ``option``
    names the option in the error."""
    if text is None:
        return list(PAPER_STUDIES)
    names = [n.strip() for n in text.split(",") if n.strip()]
    if not names:
        raise EcasweepError(f"{option}: expected study names separated by commas, e.g. {','.join(PAPER_STUDIES)}")
    return list(dict.fromkeys(names))


def check(studies: Sequence[str], profile: str, overrides: Sequence[str], budget_s: float | None, output: Path,
          devices: Sequence[str], workers: int) -> None:
    """Everything a user can get wrong, before anything trains: the studies (each loads for the
    profile), the output directory, the data of each study, and a budget too small for a first round
    (the planned cells of the cheapest study)."""
    from ..engine.data import load_dataset

    check_output(output)
    specs = [load_study(name, profile, overrides) for name in studies]
    slots = plan_slots(devices, workers)
    for spec in specs:
        load_dataset(spec.data, seed=0)
    if budget_s is not None:
        cheapest = min(estimate_seconds(spec, spec.cells(), [], slots)[0] for spec in specs)
        if budget_s < cheapest:
            raise EcasweepError(f"--budget: {budget_s / 60:.1f} min is below one round: the cheapest study's planned "
                                f"cells take about {cheapest / 60:.1f} min here")


def reproduce(studies: Sequence[str] = PAPER_STUDIES, profile: str = "quick", overrides: Sequence[str] = (),
              budget_s: float | None = None, output: Path = Path("report"), storage_url: str | None = None,
              devices: Sequence[str] = ("auto",), workers: int = 1, max_seeds: int = LOOKS[-1],
              console: Any = None, on_report: Callable[[list[Path]], None] | None = None) -> Reproduction:
    """Run ``studies`` within ``budget_s`` seconds and write the report into ``output``."""
    check(studies, profile, overrides, budget_s, output, devices, workers)
    start = time.monotonic()
    slots = plan_slots(devices, workers)
    outcomes: dict[str, Any] = {}

    def left() -> float | None:
        return None if budget_s is None else budget_s - (time.monotonic() - start)

    def report() -> list[Path]:
        parts = [StudyResults(o.study.study_name, o.spec_dict, o.records) for o in outcomes.values()]
        paths = write_report(build_report(parts), output) if parts else []
        if on_report and paths:
            on_report(paths)
        return paths

    options = dict(profile=profile, storage_url=storage_url, devices=devices, workers=workers, console=console)
    paths: list[Path] = []
    skipped = []
    for name in studies:
        remaining = left()
        if remaining is not None and _missing_seconds(name, profile, overrides, storage_url, slots) > remaining:
            skipped.append(name)  # its planned cells would overrun the budget: a cheaper study may still fit
            continue
        outcomes[name] = runner.run(name, overrides=overrides, **options)
        paths = report()
    studies = [name for name in studies if name not in skipped]
    rounds = 0
    while True:
        # the claims of all the studies are one family, as the report decides them
        tables = build_family([(outcomes[name].spec_dict, outcomes[name].records) for name in studies])
        candidates = [c for name, table in zip(studies, tables)
                      if (c := _candidate(name, outcomes[name], table, profile, overrides, slots, max_seeds)) is not None]
        if not candidates:
            reason = "resolved" if all(r.verdict != "open" for t in tables for r in t.rows) else "futility"
            break
        remaining = left()
        fitting = [c for c in candidates if remaining is None or c.seconds <= remaining]
        if not fitting:
            reason = "budget"
            break
        best = max(fitting, key=lambda c: c.score)
        outcomes[best.study] = runner.run(best.study, overrides=[*overrides, _extra_override(best.extra)], **options)
        rounds += 1
        paths = report()
    if skipped and reason != "budget":
        reason = "budget"  # some study's planned cells did not fit
    return Reproduction(reason, rounds, time.monotonic() - start, paths, list(outcomes), skipped)


def _missing_seconds(name: str, profile: str, overrides: Sequence[str], storage_url: str | None, slots) -> float:
    """The estimated wall time of the planned cells of ``name`` not yet done in the storage."""
    spec = load_study(name, profile, overrides)
    try:
        _, _, records = runner.results(spec.name, storage_url)
    except EcasweepError:  # not run yet
        records = []
    done = {r.cell for r in records if r.complete}
    cells = [c for c in spec.cells() if c.key not in done]
    return estimate_seconds(spec, cells, records, slots)[0] if cells else 0.0


def _candidate(name: str, outcome: Any, table: ClaimsTable, profile: str, overrides: Sequence[str], slots,
               max_seeds: int) -> Candidate | None:
    """The next round of ``name``'s open claims (``table``: its claims as the family decides them), or
    None when none can still be decided."""
    rows = [r for r in table.rows if r.verdict == "open"]
    plan = plan_round([(r.backbone, r.a, r.b, r.n, r.seeds_needed) for r in rows], max_seeds,
                      round_looks(design_of(outcome.spec_dict)))
    if plan.stop:
        return None
    aliases = outcome.spec_dict.get("aliases") or {}
    extra = dict(outcome.spec_dict.get("extra_seeds") or {})
    for (backbone, arm), n in plan.targets.items():
        key = f"{backbone}/{aliases.get(backbone, {}).get(arm, arm)}"
        extra[key] = max(extra.get(key, 0), n)
    spec = load_study(name, profile, [*overrides, _extra_override(extra)])
    done = {r.cell for r in outcome.records if r.complete}
    cells = [c for c in spec.cells() if c.key not in done]
    if not cells:
        return None
    seconds, _ = estimate_seconds(spec, cells, outcome.records, slots)
    progress = 0.0
    futile = set(plan.futile)
    for i, r in enumerate(rows):
        if i in futile or not r.seeds_needed:
            continue
        step = plan.targets.get((r.backbone, r.a), r.n)
        progress += min(1.0, (step - r.n) / max(1, r.seeds_needed - r.n))
    return Candidate(name, extra, len(cells), seconds, progress)
