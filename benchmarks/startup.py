"""How long the quick commands take to answer, and which heavy libraries each one imports.

Each command runs as a new process (``python -m ecasweep ...``), as a user's shell runs it; the
table gives the median wall time of ``--repeats`` runs. With ``--compare DIR`` the same commands run
side by side (interleaved, so both see the same machine load) against the ecasweep package in DIR,
for example a clone at an earlier commit; the ratio column is this checkout's time over DIR's.

Example:
    python benchmarks/startup.py --repeats 5
    python benchmarks/startup.py --repeats 5 --compare /tmp/ecasweep-before
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

from rich.console import Console
from rich.table import Table

COMMANDS = (["--version"], ["--help"], ["list"], ["show", "kernel-size"], ["run", "--help"],
            ["run", "kernel-size", "--dry-run"])
HEAVY = ("torch", "torchvision", "optuna", "scipy", "timm")
REPO = Path(__file__).resolve().parents[1]

_PROBE = """
import runpy, sys, json, atexit
atexit.register(lambda: sys.stderr.write("\\nHEAVY " + json.dumps(sorted(m for m in {heavy!r} if m in sys.modules)) + "\\n"))
sys.argv = ["ecasweep", *{args!r}]
runpy.run_module("ecasweep", run_name="__main__")
"""


def _time(repo: Path, args: list[str]) -> float:
    env = {**os.environ, "PYTHONPATH": str(repo)}
    start = time.perf_counter()
    subprocess.run([sys.executable, "-m", "ecasweep", *args], env=env, stdout=subprocess.DEVNULL,
                   stderr=subprocess.DEVNULL, timeout=300, check=False)
    return time.perf_counter() - start


def _heavy(repo: Path, args: list[str]) -> list[str]:
    env = {**os.environ, "PYTHONPATH": str(repo)}
    out = subprocess.run([sys.executable, "-c", _PROBE.format(heavy=HEAVY, args=args)], env=env,
                         capture_output=True, text=True, timeout=300, check=False)
    lines = [line for line in out.stderr.splitlines() if line.startswith("HEAVY ")]
    return json.loads(lines[-1][6:]) if lines else ["?"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--compare", type=Path, help="a checkout whose ecasweep package to time side by side")
    parser.add_argument("--json", type=Path, help="also write the rows here")
    args = parser.parse_args()
    repos = [REPO] + ([args.compare.resolve()] if args.compare else [])
    times: dict[tuple[int, int], list[float]] = {}
    for _ in range(args.repeats):
        for i, command in enumerate(COMMANDS):
            for j, repo in enumerate(repos):
                times.setdefault((i, j), []).append(_time(repo, command))
    rows = []
    for i, command in enumerate(COMMANDS):
        row = {"command": "ecasweep " + " ".join(command), "seconds": statistics.median(times[i, 0]),
               "imports": _heavy(REPO, command)}
        if args.compare:
            row.update(compare_seconds=statistics.median(times[i, 1]), compare_imports=_heavy(repos[1], command))
        rows.append(row)
    table = Table(title=f"median of {args.repeats} runs each (new process per run)")
    table.add_column("command", no_wrap=True)
    table.add_column("s", justify="right")
    table.add_column("imports")
    if args.compare:
        table.add_column(f"s ({args.compare.name})", justify="right")
        table.add_column(f"imports ({args.compare.name})")
        table.add_column("ratio", justify="right")
    for row in rows:
        cells = [row["command"], f"{row['seconds']:.2f}", ", ".join(row["imports"]) or "-"]
        if args.compare:
            cells += [f"{row['compare_seconds']:.2f}", ", ".join(row["compare_imports"]) or "-",
                      f"{row['seconds'] / row['compare_seconds']:.2f}"]
        table.add_row(*cells)
    Console().print(table)
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2) + "\n")


if __name__ == "__main__":
    main()
