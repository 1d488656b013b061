"""``ecasweep run STUDY --until-resolved``: seeds added in rounds to the arms of open claims.

After the planned seeds, each round takes the study's claims (``report.build_claims``), asks
``claims.plan_round`` which arms need seeds up to the next look, and runs those cells as ordinary
cells of the same study (the spec's ``extra_seeds``, stored with the study so that every worker
and a resumed run see them). It stops when every claim is decided ("resolved"), when the open ones
cannot be decided within ``max_seeds`` at the observed spread ("futility"), or when the next round
is expected to overrun the budget ("budget"; ``estimate.estimate_seconds``). The sequential design
of ``ecasweep.claims`` keeps the family-wise error at alpha however many rounds run.

Example:
    >>> parse_duration("45m"), parse_duration("1h30m"), parse_duration("90")
    (2700.0, 5400.0, 90.0)
"""

from __future__ import annotations

import re
import shlex
import time
from dataclasses import dataclass
from typing import Any, Sequence

from . import runner
from ..stats.sequential import LOOKS, design_of, plan_round, round_looks
from ..errors import EcasweepError
from .estimate import estimate_seconds
from ..report.verdicts import build_claims
from ..spec import load_study
from .slots import plan_slots

REASONS = {
    "resolved": "every claim has a verdict",
    "futility": "the open claims cannot be decided within {max_seeds} seeds at the observed spread",
    "budget": "the next round ({next_min:.1f} min) would overrun the budget ({left_min:.1f} min left)",
}


@dataclass
class Resolution:
    """How ``run_until_resolved`` ended: the last run's outcome, why it stopped, after how many rounds."""

    outcome: Any  # runner.RunOutcome
    reason: str
    rounds: int
    seconds: float
    summary: str


def check_max_seeds(max_seeds: int) -> int:
    """``--max-seeds`` as given, or ``EcasweepError``: from 2 to the design's last look (more seeds
    than that would be refused as futile all the same, silently).

    >>> check_max_seeds(16)
    16
    """
    if isinstance(max_seeds, bool) or not isinstance(max_seeds, int) or not 2 <= max_seeds <= LOOKS[-1]:
        raise EcasweepError(f"--max-seeds: expected an integer from 2 to {LOOKS[-1]} (the last look of the "
                            f"sequential design), got {max_seeds!r}")
    return max_seeds


def parse_duration(text: str | None) -> float | None:
    """``"45m"``, ``"2h"``, ``"1h30m"``, ``"90s"`` or plain seconds -> seconds; None stays None."""
    if text is None:
        return None
    match = re.fullmatch(r"\s*(?:(\d+(?:\.\d+)?)h)?\s*(?:(\d+(?:\.\d+)?)m)?\s*(?:(\d+(?:\.\d+)?)s?)?\s*", str(text))
    if not match or not any(match.groups()) or str(text).strip() == "":
        raise EcasweepError(f"--budget: expected a duration like 45m, 2h, 1h30m or 90s, got {text!r}")
    hours, minutes, seconds = (float(g) if g else 0.0 for g in match.groups())
    total = hours * 3600 + minutes * 60 + seconds
    if total <= 0:
        raise EcasweepError(f"--budget: expected a duration > 0, got {text!r}")
    return total


def _extra_override(extra: dict[str, int]) -> str:
    return "extra_seeds={" + ", ".join(f'"{key}" = {n}' for key, n in sorted(extra.items())) + "}"


def run_until_resolved(study_name: str, profile: str = "quick", overrides: Sequence[str] = (),
                       max_seeds: int = LOOKS[-1], budget_s: float | None = None, devices: Sequence[str] = ("auto",),
                       workers: int = 1, **run_options: Any) -> Resolution:
    """Run ``study_name`` as ``runner.run`` does, then add rounds of seeds until its claims resolve."""
    check_max_seeds(max_seeds)
    start = time.monotonic()
    options = dict(profile=profile, devices=devices, workers=workers, **run_options)
    outcome = runner.run(study_name, overrides=overrides, **options)
    stored = outcome.spec_dict.get("extra_seeds") or {}
    extra: dict[str, int] = dict(stored)
    rounds, reason, detail = 0, "", {}
    while True:
        table = build_claims(outcome.spec_dict, outcome.records)
        plan = plan_round([(r.backbone, r.a, r.b, r.n, r.seeds_needed) for r in table.rows if r.verdict == "open"],
                          max_seeds, round_looks(design_of(outcome.spec_dict)))
        if plan.stop:
            reason = plan.stop
            break
        aliases = outcome.spec_dict.get("aliases") or {}
        for (backbone, arm), n in plan.targets.items():
            key = f"{backbone}/{aliases.get(backbone, {}).get(arm, arm)}"  # an alias's cells are its arm's
            extra[key] = max(extra.get(key, 0), n)
        round_overrides = [*overrides, _extra_override(extra)]
        spec = load_study(study_name, profile, round_overrides)
        done = {r.cell for r in outcome.records if r.complete}
        new = [cell for cell in spec.cells() if cell.key not in done]
        if not new:  # the targets are reached but the claims stay open: nothing more to learn here
            reason = "futility"
            break
        seconds, _ = estimate_seconds(spec, new, outcome.records, plan_slots(devices, workers))
        left = None if budget_s is None else budget_s - (time.monotonic() - start)
        if left is not None and seconds > left:
            reason, detail = "budget", {"next_min": seconds / 60, "left_min": max(0.0, left) / 60}
            break
        outcome = runner.run(  # its open_study stores the added seeds, so workers see them
            study_name, overrides=round_overrides, **options)
        rounds += 1
    elapsed = time.monotonic() - start
    summary = (f"--until-resolved ended after {rounds} round{'s' if rounds != 1 else ''} "
               f"({elapsed / 60:.1f} min): {REASONS[reason].format(max_seeds=max_seeds, **detail)}.")
    return Resolution(outcome, reason, rounds, elapsed, summary)


def next_step(study_name: str, outcome: Any, profile: str = "quick", overrides: Sequence[str] = (),
              devices: Sequence[str] = ("auto",), workers: int = 1, max_seeds: int = LOOKS[-1],
              options: Sequence[str] = ()) -> str | None:
    """The line a plain ``run`` ends with while claims are open: the ``--until-resolved`` command and
    the time it would take if every open claim needed the seeds its observed spread projects
    (``options``: further words of the command, e.g. ``--storage URL``)."""
    table = build_claims(outcome.spec_dict, outcome.records)
    open_rows = [r for r in table.rows if r.verdict == "open"]
    if not open_rows:
        return None
    aliases = outcome.spec_dict.get("aliases") or {}
    extra = dict(outcome.spec_dict.get("extra_seeds") or {})
    reachable = [r for r in open_rows if r.seeds_needed is not None and r.seeds_needed <= max_seeds]
    for r in reachable:
        for arm in (r.a, r.b):
            key = f"{r.backbone}/{aliases.get(r.backbone, {}).get(arm, arm)}"
            extra[key] = max(extra.get(key, 0), r.seeds_needed)
    words = ["ecasweep", "run", study_name, "--until-resolved", *(["--profile", profile] if profile != "quick" else []),
             *[w for o in overrides for w in ("--set", o)], *options]
    command = " ".join(shlex.quote(w) for w in words)
    if not reachable:
        return (f"{len(open_rows)} claim(s) open, none decidable within {max_seeds} seeds at the observed spread; "
                f"more seeds would not settle them ({command} would stop at once).")
    spec = load_study(study_name, profile, [*overrides, _extra_override(extra)])
    done = {r.cell for r in outcome.records if r.complete}
    cells = [c for c in spec.cells() if c.key not in done]
    seconds, _ = estimate_seconds(spec, cells, outcome.records, plan_slots(devices, workers))
    return (f"{len(open_rows)} claim(s) open ({len(reachable)} decidable within {max_seeds} seeds at the observed "
            f"spread): {command} (about {seconds / 60:.0f} min for {len(cells)} more cells).")
