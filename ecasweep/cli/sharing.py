"""``ecasweep report`` and ``ecasweep reproduce``: studies as one report to share (Markdown, self-contained
HTML, JSON), from studies already run or from one budgeted run of the paper's ablations."""

from __future__ import annotations

from pathlib import Path
from typing import List, Optional

import typer

from .common import ProfileOpt, SetOpt, StorageOpt, _quiet_libraries, _user_errors, app, console, err


@app.command("report")
def report(
    studies: List[str] = typer.Argument(..., help="Study names in the storage."),
    output: Path = typer.Option(..., "--output", "-o", help="Directory for report.md, report.html and report.json."),
    storage: Optional[str] = StorageOpt,
    figures: bool = typer.Option(True, "--figures/--no-figures", help="Embed figures in the HTML (needs matplotlib)."),
) -> None:
    """Write one report of studies already run: each claim with its verdict, interval, seeds and the
    paper's number, the tables, the machine, and the commands that rerun every cell. Nothing trains.

    Example: [bold]ecasweep report kernel-size table2 --output report/[/]
    """
    from ..report.document import StudyResults, build_report, check_output, write_report
    from ..store.storage import mask_url
    from ..sweep import runner

    _quiet_libraries()
    with _user_errors():
        check_output(output)
        parts = []
        for name in dict.fromkeys(studies):  # a study named twice is reported once
            _, spec, records = runner.results(name, storage)
            parts.append(StudyResults(name, spec, records))
        paths = write_report(build_report(parts, mask_url(storage) if storage else None), output, figures=figures)
    err.print("wrote " + ", ".join(str(p) for p in paths), highlight=False, soft_wrap=True)


@app.command()
def reproduce(
    profile: str = ProfileOpt,
    budget: Optional[str] = typer.Option(None, "--budget", help="Wall time for the whole run, e.g. 2h or 45m; no "
                                         "round starts that is expected to overrun it \\[default: no limit]."),
    studies: Optional[str] = typer.Option(None, "--studies", help="Comma-separated studies \\[default: kernel-size,"
                                          "table2,gamma-beta,methods: Figure 4, Table 2, Eq. 12, Table 3]."),
    output: Path = typer.Option(Path("report"), "--output", "-o", help="Directory of the report."),
    set_: Optional[list[str]] = SetOpt,
    storage: Optional[str] = StorageOpt,
    devices: str = typer.Option("auto", help="Comma-separated devices, one worker each: cpu,cpu or cuda:0,cuda:1."),
    workers: int = typer.Option(0, help="Worker processes on the one device given \\[default: one per core on "
                                        "the CPU, one per GPU]."),
    max_seeds: Optional[int] = typer.Option(None, "--max-seeds", help="The most seeds an arm may reach, 2 to 64 "
                                            "\\[default: 64]."),
) -> None:
    """Reproduce the paper's ablations within a budget: each study's planned cells, then rounds of seeds
    where claims are still open, across all studies at once, where a verdict is expected soonest per
    minute; the report (report.md, report.html, report.json) is rewritten after every step. The same
    command again resumes.

    Example: [bold]ecasweep reproduce --budget 2h --output report/[/]
    """
    from ..launch.shared import mark_local_workers
    from ..sweep.reproduce import parse_studies, reproduce as run_reproduction
    from ..sweep.rounds import check_max_seeds, parse_duration

    with _user_errors():
        names = parse_studies(studies)
        budget_s = parse_duration(budget)
        seeds = {} if max_seeds is None else {"max_seeds": check_max_seeds(max_seeds)}
        _quiet_libraries()
        mark_local_workers()
        result = run_reproduction(names, profile, set_ or [], budget_s, output, storage,
                                  [d for d in devices.split(",") if d.strip()], workers, console=console, **seeds)
    words = {"resolved": "every claim has a verdict", "futility": "the open claims cannot be decided within the seeds allowed",
             "budget": "the budget does not fit another round"}
    skipped = f"; not run (over the budget): {', '.join(result.skipped)}" if result.skipped else ""
    console.print(f"reproduce ended after {result.rounds} round(s) of added seeds ({result.seconds / 60:.1f} min): "
                  f"{words[result.reason]}{skipped}.", highlight=False)
    if result.report:
        console.print("report: " + ", ".join(str(p) for p in result.report), highlight=False)
