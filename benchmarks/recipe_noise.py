"""Noise per minute of compute: which quick recipe decides the paper's claims with the fewest seeds.

Each recipe trains the same three arms (no attention, SE with r = 16, ECA with k = 3) on the same
seeds, as an ordinary ecasweep study (one study per recipe, in one SQLite file, so an interrupted
run resumes). For each recipe and backbone it prints the paired differences ECA − vanilla and
ECA − SE over seeds (mean and SD, in points of top-1), the median training minutes per cell, and:

- ``seeds``: the seeds the legacy design of ``ecasweep.claims`` (``bonferroni-even``) would take to
  decide a superiority claim with that SD and a true difference of 0.5 points, at the kernel-size study's
  per-claim α (α = 0.05 over its 26 claim-backbone pairs);
- ``min/verdict``: those seeds times the minutes of one seed of both arms of the claim: compute to a
  verdict, the number to compare across recipes.

Example:
    python benchmarks/recipe_noise.py --seeds 8 --storage sqlite:///recipes.db
    python benchmarks/recipe_noise.py --seeds 2 --recipes 1x24k,2x12k --json recipes.json
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
from pathlib import Path

from rich.console import Console
from rich.table import Table

from ecasweep.stats import sequential as claims
from ecasweep.sweep import runner
from ecasweep.store.results import read_records

#: recipe name -> ``--set`` overrides of the quick profile, all of them 24k training images in all.
#: A narrower network is no candidate: at width 8 the first stage has 8 channels, which SE (r = 16)
#: cannot reduce.
RECIPES: dict[str, list[str]] = {
    "1x24k": [],  # the quick profile until 2026-11-30
    "2x12k": ["data.subset=12000", "train.epochs=2"],
    "4x6k": ["data.subset=6000", "train.epochs=4"],
}
STUDY = """\
name = "recipe-noise"
layout = "table2"
baseline = "none"

[[arms]]
attention = "none"

[[arms]]
attention = "se"
r = 16

[[arms]]
attention = "eca"
k = 3
"""
BASE = ["data.subset=24000", "train.epochs=1"]  # each recipe says how it differs from this
PAIRS = (("eca(k=3)", "none"), ("eca(k=3)", "se(r=16)"))
EFFECT = 0.5  # points of top-1: the size of difference a claim should be able to decide
ALPHA = claims.family_alpha(22)  # kernel-size, quick: 22 distinct (claim, backbone) hypotheses


def measure(recipe: str, seeds: int, backbones: list[str], storage: str, workers: int) -> list[dict]:
    """Run (or resume) one recipe's study; one row per backbone and pair."""
    with tempfile.TemporaryDirectory() as tmp:
        study_file = Path(tmp) / "recipe-noise.toml"
        study_file.write_text(STUDY)
        overrides = [*BASE, *RECIPES[recipe], f"seeds={seeds}", f"backbones={json.dumps(backbones)}"]
        outcome = runner.run(str(study_file), overrides=overrides, storage_url=storage,
                             name=f"recipe-noise-{recipe}", workers=workers)
    done = [r for r in read_records(outcome.study) if r.complete]
    rows = []
    for backbone in backbones:
        top1 = {(r.arm, r.seed): 100 * r.value for r in done if r.backbone == backbone}
        minutes = statistics.median(r.metrics["wall_seconds"] / 60 for r in done if r.backbone == backbone)
        for a, b in PAIRS:
            diffs = [top1[a, s] - top1[b, s] for s in range(seeds) if (a, s) in top1 and (b, s) in top1]
            sd = statistics.stdev(diffs)
            needed = claims.seeds_to_decide(EFFECT, sd, "superiority", 0.0, ALPHA)
            rows.append({"recipe": recipe, "backbone": backbone, "pair": f"{a} - {b}", "n": len(diffs),
                         "mean": statistics.fmean(diffs), "sd": sd,
                         "arm_sd": statistics.stdev([top1[a, s] for s in range(seeds) if (a, s) in top1]),
                         "top1": statistics.fmean(top1[a, s] for s in range(seeds) if (a, s) in top1),
                         "cell_min": minutes, "seeds": needed,
                         "min_per_verdict": None if needed is None else needed * 2 * minutes})
    return rows


def render(rows: list[dict]) -> Table:
    table = Table(title=f"Paired differences per recipe (superiority of {EFFECT} pt at α = {ALPHA:.4f})")
    for column in ("recipe", "backbone", "pair", "n", "ECA top-1", "mean diff", "SD diff", "SD arm",
                   "min/cell", "seeds", "min/verdict"):
        table.add_column(column, justify="left" if column in ("recipe", "backbone", "pair") else "right")
    for r in rows:
        table.add_row(r["recipe"], r["backbone"], r["pair"], str(r["n"]), f"{r['top1']:.2f}", f"{r['mean']:+.2f}",
                      f"{r['sd']:.2f}", f"{r['arm_sd']:.2f}", f"{r['cell_min']:.2f}",
                      "> 64" if r["seeds"] is None else str(r["seeds"]),
                      "-" if r["min_per_verdict"] is None else f"{r['min_per_verdict']:.0f}")
    return table


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", type=int, default=8)
    parser.add_argument("--recipes", default=",".join(RECIPES), help=f"comma-separated, of {', '.join(RECIPES)}")
    parser.add_argument("--backbones", default="resnet-8", help="comma-separated")
    parser.add_argument("--storage", default="sqlite:///recipe-noise.db")
    parser.add_argument("--workers", type=int, default=0, help="[default: one per core]")
    parser.add_argument("--json", metavar="PATH", help="also write the rows as JSON")
    args = parser.parse_args(argv)
    unknown = sorted(set(args.recipes.split(",")) - set(RECIPES))
    if unknown:
        parser.error(f"unknown recipe(s) {', '.join(unknown)}; expected some of {', '.join(RECIPES)}")
    rows = [row for recipe in args.recipes.split(",")
            for row in measure(recipe, args.seeds, args.backbones.split(","), args.storage, args.workers)]
    Console().print(render(rows))
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
