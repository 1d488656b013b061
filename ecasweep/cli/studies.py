"""``ecasweep list`` and ``ecasweep show``: the studies, their resolved specs, cells and claims."""

from __future__ import annotations

import json
import sys
from typing import Optional

import typer
from rich.table import Table

from ..errors import EcasweepError

from .common import (app, console, err, ProfileOpt, SetOpt, _user_errors, _print_json, _plural)


@app.command("list")
def list_studies() -> None:
    """List the studies available, with what they vary and which paper figure they mirror.

    Example: [bold]ecasweep list[/]
    """
    from ..spec import list_studies as load_all

    with _user_errors():
        specs = load_all(check_models=None)  # the shipped studies' models are checked by the tests
    from rich.markup import escape
    from rich.padding import Padding

    # One line per study, its description indented below: readable at 80 columns (a table's
    # description column wrapped to 4-7 lines there).
    console.print("[bold]studies[/] (quick profile; `ecasweep show STUDY` for one in full)")
    for spec in specs:
        size = f"search, {_plural(spec.search.n_trials, 'trial')}" if spec.search else \
            f"{_plural(len(spec.arms), 'arm')}, {_plural(len(spec.cells()), 'cell')}"
        console.print(f"[bold cyan]{escape(spec.name)}[/]  {escape(spec.mirrors or '-')} · {size}", highlight=False)
        console.print(Padding(escape(spec.description), (0, 0, 0, 2)), style="dim", highlight=False)


@app.command()
def show(study: str = typer.Argument(..., help="Study name or path to a .toml file."),
         profile: str = ProfileOpt, set_: Optional[list[str]] = SetOpt,
         cell: Optional[str] = typer.Option(None, "--cell", help="Print the `ecasweep train` command that "
                                                                 "trains this cell alone, e.g. resnet-8/none/seed=0."),
         as_json: bool = typer.Option(False, "--json", help="Print the resolved spec as JSON.")) -> None:
    """Show the resolved spec (after profile and overrides) and its cells.

    Example: [bold]ecasweep show kernel-size --profile cifar --set seeds=5[/]
      [bold]ecasweep show kernel-size --cell "resnet-8/eca(k=3)/seed=0"[/]
    """
    from ..spec import load_study

    with _user_errors():
        spec = load_study(study, profile, set_ or [], check_models=None if cell is None else True)
        if cell is not None:
            _print_cell_command(spec, cell)
            return
    if as_json:
        _print_json(spec.to_dict())
        return
    console.print(f"[bold]{spec.name}[/] ({spec.profile}): {spec.description}")
    console.print(f"mirrors {spec.mirrors}; dataset {spec.data.dataset}; backbones {', '.join(spec.backbones)}; "
                  f"{_plural(spec.seeds, 'seed')}; {_plural(spec.train.epochs, 'epoch')}; baseline {spec.baseline}")
    table = Table(title="arms")
    table.add_column("arm", no_wrap=True)  # the id users type (compare, --cell): never cut
    table.add_column("attention")
    kernels = [arm for arm in spec.arms if spec.kernel_sizes(arm, spec.backbones[0]) is not None]
    for backbone in spec.backbones if kernels else ():
        table.add_column(f"k on {backbone}")
    for arm in spec.arms:
        ks = ["/".join(map(str, spec.kernel_sizes(arm, b) or [])) for b in spec.backbones] if kernels else []
        written = spec.code.get(arm.attention, {}).get("source", arm.attention)  # a user's module: as the study names it
        table.add_row(arm.id, written, *ks)
    console.print(table)
    from ..spec import alias_notes

    for line in alias_notes(spec):
        console.print(line, highlight=False)
    if spec.search is None:
        counts = spec.cell_counts()
        console.print(f"{_plural(counts['cells'], 'cell')} = {_plural(len(spec.arms), 'arm')} x "
                      f"{_plural(len(spec.backbones), 'backbone')} x {_plural(spec.seeds, 'seed')}"
                      + (f", less {counts['aliased']} of aliases" if counts["aliased"] else "")
                      + (f", plus {counts['added']} added seeds" if counts["added"] else ""), highlight=False)
    else:
        console.print(f"search: {_plural(spec.search.n_trials, 'trial')}, {spec.search.sampler} sampler, "
                      f"{spec.search.pruner} pruner over {json.dumps(spec.search.space)}")
    _print_claims(spec)


def _print_claims(spec) -> None:
    """The study's claims: each declared claim's words and kind, then the pairs of arms it tests."""
    from rich.markup import escape
    from rich.padding import Padding

    if not spec.claims:
        return
    from ..spec.claims import RELATION

    groups: dict[tuple[str, str], list[str]] = {}
    for c in spec.claims:
        kind = c.kind if c.kind == "superiority" else f"{c.kind}, margin {c.margin:g} points"
        groups.setdefault((c.words, kind), []).append(f"{c.a} {RELATION[c.kind]} {c.b}")
    console.print(f"[bold]claims[/]: {_plural(len(spec.claims), 'pair')} of arms, each tested on every backbone "
                  f"(verdicts: `ecasweep table {escape(spec.name)} --claims`)", highlight=False)
    for (words, kind), pairs in groups.items():
        console.print(Padding(f"{escape(words)} [dim]({kind})[/]", (0, 0, 0, 2)), highlight=False)
        console.print(Padding(escape(", ".join(pairs)), (0, 0, 0, 6)), style="dim", highlight=False)


def _print_cell_command(spec, key: str) -> None:
    """The train command of one cell on stdout; on stderr, on which device and threads it matches."""
    from ..engine.command import command_line, train_args
    from ..engine.config import RuntimeConfig
    from ..errors import SpecError
    from ..sweep.slots import plan_slots

    try:
        cell = spec.cell(key)
    except SpecError as exc:
        raise EcasweepError(f"--cell: {exc}") from None
    slot = plan_slots(["auto"], 0)[0]
    args = train_args(spec.trial_config(cell, RuntimeConfig()), slot.device, slot.threads)
    sys.stdout.write(command_line(args) + "\n")
    err.print(f"# the same numbers as the cell when its worker ran on {slot.device} with {slot.threads} "
              "thread(s), as a default `run` here does; with --workers or on another machine, give that "
              "worker's --device and --threads", highlight=False, markup=False, soft_wrap=True)
