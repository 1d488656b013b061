"""``ecasweep report``: studies already run, as one report to share (Markdown, self-contained HTML, JSON)."""

from __future__ import annotations

from pathlib import Path
from typing import List, Optional

import typer

from .common import StorageOpt, _quiet_libraries, _user_errors, app, err


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
