"""Seeds and minutes to a verdict in a stored study, under its own design and under another one.

A study run with ``run --until-resolved`` holds the seeds its rounds added. This script decides its
claims on those seeds under the design the study stores and under a second design (by default the
legacy ``bonferroni-even``), and prints per distinct hypothesis: the verdict, the look that decided it
and the minutes from the study's first trial to the moment the last cell of that look (both arms,
seeds 0..n-1) completed. The comparison is on one set of data: the rounds themselves were planned by
the stored design, so the second design's column says what it would conclude from these seeds, not
where its own rounds would have gone (the simulation in ``design_simulation.py`` covers that).

Example:
    python benchmarks/design_on_real_run.py kernel-size --storage sqlite:///ecasweep.db
    python benchmarks/design_on_real_run.py kernel-size --other bonferroni-power-0.7-after-8 --json out.json
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from typing import Any

from rich.console import Console
from rich.table import Table

from ecasweep.report.verdicts import build_claims, row_hypotheses
from ecasweep.stats import sequential as decide
from ecasweep.sweep import runner


def _minutes(loaded: Any) -> dict[tuple[str, str, int], float]:
    """(backbone, arm, seed) -> minutes from the study's first trial start to that cell's completion."""
    trials = [t for t in loaded.get_trials(deepcopy=False) if t.datetime_start is not None]
    t0 = min(t.datetime_start for t in trials)
    done: dict[tuple[str, str, int], float] = {}
    for t in trials:
        attrs = t.user_attrs
        if t.datetime_complete is None or t.state.name != "COMPLETE" or "cell" not in attrs:
            continue
        key = (attrs["backbone"], attrs["arm"], int(attrs["seed"]))
        minute = (t.datetime_complete - t0).total_seconds() / 60
        done[key] = min(done.get(key, minute), minute)
    return done


def decided(spec: dict, records: list, design: str, done: dict) -> dict[tuple, dict]:
    """(backbone, a, b, kind) -> verdict, seeds and minutes of each distinct hypothesis under ``design``."""
    procedure, _, spending = design.partition("-")
    table = build_claims({**spec, "design": procedure, "spending": spending}, records)
    out: dict[tuple, dict] = {}
    for r, hypothesis in zip(table.rows, row_hypotheses(spec)):  # an alias is its arm: one hypothesis
        if r.verdict == "same model":
            continue
        key = hypothesis[:4]
        minutes = None
        if r.decided_at is not None:
            backbone, a, b = key[:3]
            seeds = sorted(s for (bb, arm, s) in done if bb == backbone and arm == a)
            both = [s for s in seeds if (backbone, b, s) in done][:r.decided_at]
            minutes = max(done[(backbone, arm, s)] for s in both for arm in (a, b))
        out.setdefault(key, {"words": r.words, "n": r.n, "verdict": r.verdict, "seeds": r.decided_at,
                             "minutes": minutes})
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("study")
    parser.add_argument("--storage", default=None, help="storage URL [default: ecasweep's default]")
    parser.add_argument("--other", default=decide.LEGACY.name, help="the design to compare with")
    parser.add_argument("--json", default=None, help="write the rows here as well")
    args = parser.parse_args()
    procedure, _, spending = args.other.partition("-")
    try:
        decide.Design(procedure, spending)
    except ValueError as e:
        parser.error(f"--other: a design name such as {decide.LEGACY.name} or {decide.DEFAULT.name}: {e}")
    loaded, spec, records = runner.results(args.study, args.storage)
    done = _minutes(loaded)
    stored = decide.design_of(spec).name
    ours, other = decided(spec, records, stored, done), decided(spec, records, args.other, done)

    table = Table(title=f"{args.study}: {len(done)} cells, last at {max(done.values()):.1f} min")
    for col in ("backbone", "A", "B", "kind", "seeds run", stored, args.other):
        table.add_column(col)
    for key, row in ours.items():
        cells = []
        for side in (row, other[key]):
            cells.append("open" if side["seeds"] is None else
                         f"{side['verdict']} at {side['seeds']} seeds, {side['minutes']:.1f} min")
        table.add_row(*key, str(row["n"]), *cells)
    console = Console(width=None if sys.stdout.isatty() else 200)  # a log file gets whole rows
    console.print(table)
    for name, rows in ((stored, ours), (args.other, other)):
        hit = [r for r in rows.values() if r["seeds"] is not None]
        line = f"{name}: {len(hit)} of {len(rows)} distinct hypotheses decided"
        if hit:
            line += (f"; mean {statistics.mean(r['seeds'] for r in hit):.1f} seeds, "
                     f"{statistics.mean(r['minutes'] for r in hit):.1f} min to the verdict")
        console.print(line)
    both = [k for k in ours if ours[k]["seeds"] is not None and other[k]["seeds"] is not None]
    if both:
        console.print(f"decided by both ({len(both)}): {stored} "
                      f"{statistics.mean(ours[k]['seeds'] for k in both):.1f} seeds / "
                      f"{statistics.mean(ours[k]['minutes'] for k in both):.1f} min, {args.other} "
                      f"{statistics.mean(other[k]['seeds'] for k in both):.1f} seeds / "
                      f"{statistics.mean(other[k]['minutes'] for k in both):.1f} min")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({name: [{"hypothesis": list(k), **v} for k, v in rows.items()]
                       for name, rows in ((stored, ours), (args.other, other))}, f, indent=1)


if __name__ == "__main__":
    main()
