"""The error rates and the seeds of the claims designs (issue 22), simulated: the tables of docs/claims.md.

Every simulated study is the built-in kernel-size study at the quick profile (its 22 distinct (claim,
backbone) hypotheses: 13 claims on 2 backbones less the rows where the adaptive k is k = 3), decided
by the code that decides real claims (``stats.sequential.decide_family``), with seeds added round by
round as ``run --until-resolved`` adds them (``stats.simulation.simulate``: 2 planned seeds, then
``plan_round`` until it says stop, ``--max-seeds 64``), or all 64 seeds at once ("full sample").

Three tables (Markdown, on stdout):

- ``spending``: the mean seeds to a verdict under Holm recycling with each candidate spending
  function, in the effect scenarios below; the one with the lowest mean relative to the legacy design
  is the default (``stats.spending.DEFAULT``);
- ``errors``: the family-wise rate of wrong verdicts (any verdict of the study wrong at any round) of
  the legacy design (``bonferroni-even``) and the default one, for each configuration of true
  differences (``simulation.CONFIGS``) and noise (``simulation.NOISES``), with its binomial SE;
- ``seeds``: seeds to a verdict before (legacy) and after (the default design, and each of its two
  parts alone), in the effect scenarios.

Effect scenarios: the ECA arms ``effect`` points above SE and the vanilla network (every k alike),
paired differences of SD ``sd`` (the quick profile shows 0.5-1.0 points): the superiority claims are
true, the equivalence and non-inferiority ones too (no difference between k's). "Seeds to a verdict"
of a hypothesis: the seeds it had when a verdict first appeared in its table, 64 when none did (the
run stopped at 64 seeds or for futility), averaged over the 22 hypotheses and the studies.

Example:
    python benchmarks/design_simulation.py --sims 6000 --gain-sims 2000 > design.md
    python benchmarks/design_simulation.py --tables spending --gain-sims 2000
    python benchmarks/design_simulation.py --quick        # a minute: 300 studies per cell
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time

import numpy as np

from ecasweep.report.verdicts import hypotheses
from ecasweep.spec import load_study
from ecasweep.stats import sequential as claims
from ecasweep.stats import simulation as sim
from ecasweep.stats import spending

HYPOTHESES = hypotheses(load_study("kernel-size").to_dict())
ARMS = sim.arms_of(HYPOTHESES)
SCENARIOS = ((1.0, 0.5), (1.0, 0.75), (1.0, 1.0), (0.5, 0.5), (0.5, 0.75), (-1.0, 0.75))
CANDIDATES = ("even", "power-1", "power-2", "pocock", "obf", "power-0.5-after-8", "power-0.7-after-8",
              "power-1-after-8", "power-0.5-after-12")
SUPERIORITY = np.array([h[3] == "superiority" for h in HYPOTHESES])


def effects(effect: float) -> np.ndarray:
    return np.array([effect if arm.startswith("eca") else 0.0 for _, arm in ARMS])


def run_scenario(design: claims.Design, effect: float, sd: float, sims: int, seed: int) -> sim.Outcome:
    rng = np.random.default_rng(seed)  # the same studies for every design: paired comparisons
    return sim.simulate(sim.noise(rng, (sims, len(ARMS), 64), sd), HYPOTHESES, ARMS, design, effects=effects(effect))


def to_verdict(out: sim.Outcome) -> np.ndarray:
    """Seeds to a verdict per (study, hypothesis): when one first appeared, else 64."""
    return np.where(out.first > 0, out.first, 64)


def spending_table(sims: int) -> tuple[str, str, list[dict]]:
    legacy = {s: to_verdict(run_scenario(claims.LEGACY, *s, sims, 100 + i)).mean() for i, s in enumerate(SCENARIOS)}
    rows, records = [], []
    for name in CANDIDATES:
        design = claims.Design("holm", name)
        means = [to_verdict(run_scenario(design, *s, sims, 100 + i)).mean() for i, s in enumerate(SCENARIOS)]
        ratio = float(np.mean([m / legacy[s] for m, s in zip(means, SCENARIOS)]))
        records.append({"spending": name, "means": means, "ratio": ratio})
        rows.append(f"| {name} | " + " | ".join(f"{m:.1f}" for m in means) + f" | {ratio - 1:+.1%} |")
    best = min(records, key=lambda r: r["ratio"])["spending"]
    head = ("| spending (Holm) | " + " | ".join(f"{e:+g} pt, SD {sd:g}" for e, sd in SCENARIOS)
            + " | mean change vs legacy |\n|---|" + "--:|" * (len(SCENARIOS) + 1))
    legacy_row = "| legacy (bonferroni-even) | " + " | ".join(f"{legacy[s]:.1f}" for s in SCENARIOS) + " | |"
    return "\n".join([head, legacy_row, *rows]), best, records


def error_table(sims: int, designs: list[claims.Design]) -> tuple[str, list[dict]]:
    rows, records = [], []
    for noise in sim.NOISES:
        for config in sim.CONFIGS:
            cells = []
            for design in designs:
                for rounds in (True, False):
                    rng = np.random.default_rng(11)
                    out = sim.simulate(sim.noise(rng, (sims, len(ARMS), 64), 0.5, noise), HYPOTHESES, ARMS, design,
                                       shift=sim.shifts(config, HYPOTHESES, 0.5), rounds=rounds)
                    rate = float(out.wrong.mean())
                    se = float(np.sqrt(rate * (1 - rate) / sims))
                    records.append({"noise": noise, "config": config, "design": design.name, "rounds": rounds,
                                    "fwer": rate, "se": se})
                    cells.append(f"{rate:.4f} ± {se:.4f}")
            rows.append(f"| {noise} | {config} | " + " | ".join(cells) + " |")
    head = ("| noise | configuration | " + " | ".join(f"{d.name}, {m}" for d in designs
                                                     for m in ("rounds", "full sample"))
            + " |\n|---|---|" + "--:|" * (2 * len(designs)))
    return "\n".join([head, *rows]), records


def seeds_table(sims: int, designs: list[claims.Design]) -> tuple[str, list[dict]]:
    """``designs`` against the first; the last row of each scenario, "ceiling", is not a valid design:
    every hypothesis at the whole alpha (alpha / 2 a side), what recycling could give at most."""
    rows, records = [], []
    ceiling = claims.Design("bonferroni", spending.DEFAULT)
    for i, (effect, sd) in enumerate(SCENARIOS):
        outs = [run_scenario(design, effect, sd, sims, 200 + i) for design in designs]
        rng = np.random.default_rng(200 + i)
        outs.append(sim.simulate(sim.noise(rng, (sims, len(ARMS), 64), sd), HYPOTHESES, ARMS, ceiling,
                                 effects=effects(effect), alpha=claims.ALPHA * len(HYPOTHESES)))
        base = to_verdict(outs[0])
        for design, out in zip([*designs, None], outs):
            seeds = to_verdict(out)
            both = (outs[0].first > 0) & (out.first > 0)
            name = design.name if design else "ceiling (no multiplicity correction: not valid)"
            record = {"effect": effect, "sd": sd, "design": name, "seeds": float(seeds.mean()),
                      "change": float(seeds.mean() / base.mean() - 1), "decided": float((out.first > 0).mean()),
                      "paired": float(out.first[both].mean()), "paired_legacy": float(outs[0].first[both].mean()),
                      "superiority": float(seeds[:, SUPERIORITY].mean()), "cells": float(out.cells.mean()),
                      "wrong": float(out.wrong.mean())}
            records.append(record)
            rows.append(f"| {effect:+g} | {sd:g} | {name} | {record['seeds']:.1f} ({record['change']:+.0%}) | "
                        f"{record['decided']:.0%} | {record['paired']:.1f} vs {record['paired_legacy']:.1f} "
                        f"({record['paired'] / record['paired_legacy'] - 1:+.0%}) | {record['superiority']:.1f} | "
                        f"{record['cells']:.0f} | {record['wrong']:.3f} |")
    head = ("| effect (pt) | SD | design | seeds to a verdict (open: 64) | decided | seeds, hypotheses both "
            "designs decide (vs legacy) | superiority claims only | cells per study | wrong verdicts (FWER) |\n"
            "|--:|--:|---|--:|--:|--:|--:|--:|--:|")
    return "\n".join([head, *rows]), records


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sims", type=int, default=6000, help="studies per cell of the error table")
    parser.add_argument("--gain-sims", type=int, default=2000, help="studies per cell of the seeds tables")
    parser.add_argument("--quick", action="store_true", help="300 studies per cell (a smoke run)")
    parser.add_argument("--tables", default="spending,errors,seeds", help="which tables, comma-separated")
    parser.add_argument("--json", help="also write the numbers here")
    args = parser.parse_args()
    sims, gain = (300, 300) if args.quick else (args.sims, args.gain_sims)
    start = time.time()
    print(f"Machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores; "
          f"{len(HYPOTHESES)} hypotheses, alpha {claims.ALPHA}, looks {claims.LOOKS}.\n")
    tables = args.tables.split(",")
    spend_records = error_records = seed_records = None
    if "spending" in tables:
        table, best, spend_records = spending_table(gain)
        print(f"## Spending functions ({gain} studies per cell, mean seeds to a verdict)\n\n{table}\n\n"
              f"Lowest: {best} (the default: {spending.DEFAULT}).\n", flush=True)
    if "errors" in tables:
        table, error_records = error_table(sims, [claims.LEGACY, claims.DEFAULT])
        print(f"## Family-wise error ({sims} studies per cell, ± binomial SE)\n\n{table}\n", flush=True)
    if "seeds" in tables:
        parts = [claims.LEGACY, claims.Design("bonferroni", spending.DEFAULT), claims.Design("holm", "even"),
                 claims.DEFAULT]
        table, seed_records = seeds_table(gain, parts)
        print(f"## Seeds to a verdict ({gain} studies per cell)\n\n{table}\n")
    print(f"({time.time() - start:.0f} s)")
    if args.json:
        with open(args.json, "w", encoding="utf-8") as f:
            json.dump({"spending": spend_records, "errors": error_records, "seeds": seed_records}, f, indent=1)


if __name__ == "__main__":
    main()
