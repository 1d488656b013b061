"""``ecasweep table``, ``compare``, ``plot`` and ``dashboard``: reading a study's results (never training)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Optional

import typer

from ..errors import EcasweepError

from .common import (app, console, err, StorageOpt, _user_errors, _quiet_libraries, _print_json, _output_format, _check_choice, _model_errors)


def _print_table(study, spec_dict, records, fmt: str = "rich", output: Path | None = None, family=None,
                 **options) -> None:
    """``family``: ``(members, index)``, the ``(spec, records)`` of the studies whose claims are one family
    and this study's place among them (None: the study alone)."""
    from ..report import build_family, build_table, render, render_with_claims

    claims_only = options.pop("claims_only", False)
    table = build_table(spec_dict, records, **options)
    members, index = family or ([(spec_dict, records)], 0)
    rendered = render_with_claims(render(table, fmt), build_family(members)[index], fmt, claims_only)
    if output is not None:
        try:
            output.write_text(rendered if rendered.endswith("\n") else rendered + "\n")
        except OSError as exc:
            raise EcasweepError(f"--output {output}: cannot write it ({exc.strerror or exc})") from None
        err.print(f"wrote {output}")
    elif fmt == "rich":
        console.print(rendered)
    else:
        sys.stdout.write(rendered if rendered.endswith("\n") else rendered + "\n")


@app.command()
def table(
    study: str = typer.Argument(..., help="Study name in the storage."),
    storage: Optional[str] = StorageOpt,
    fmt: Optional[str] = typer.Option(None, "--format", "-f", help="rich, markdown, csv, json or latex "
                                      "\\[default: from the --output file's extension, else rich]."),
    output: Optional[Path] = typer.Option(None, "--output", "-o", help="Write to this file (.md, .csv, .json, .tex)."),
    metric: Optional[str] = typer.Option(None, help="top1, top5 or loss \\[default: top1]."),
    baseline: Optional[str] = typer.Option(None, help="Arm id to compare against \\[default: the study's]."),
    layout: Optional[str] = typer.Option(None, help="table2, figure4, gamma-beta, search or table3 \\[default: the study's]."),
    test: Optional[str] = typer.Option(None, help="Paired test: t (paired t-test) or wilcoxon \\[default: t]."),
    bootstrap: bool = typer.Option(False, "--bootstrap", help="Bootstrap confidence intervals."),
    claims_only: bool = typer.Option(False, "--claims", help="Only the Claims table (the study's claims and their "
                                     "verdicts, on top-1: the paper's claims are about top-1 accuracy)."),
    family: Optional[str] = typer.Option(None, "--family", help="Studies (comma-separated) whose claims are decided "
                                         "together with this one's, as one family, as a report of those studies "
                                         "decides them (ecasweep report, reproduce)."),
) -> None:
    """The study's table: mean ± std over seeds, 95% CI, Δ vs baseline with Holm-adjusted p, ties with best.

    Example: [bold]ecasweep table kernel-size --format latex --output table.tex[/]
    """
    from ..report.tables import LAYOUTS, METRICS
    from ..stats.summary import TESTS
    from ..sweep import runner

    _quiet_libraries()
    with _user_errors():
        fmt = _output_format(fmt, output)
        if metric is not None:
            _check_choice("--metric", metric, METRICS)
        if test is not None:
            _check_choice("--test", test, TESTS)
        if layout is not None:
            _check_choice("--layout", layout, LAYOUTS)
        if claims_only:
            _check_claims_options(metric, baseline, layout, test, bootstrap)
        metric, test = metric or "top1", test or "t"
        loaded, spec_dict, records = runner.results(study, storage)
        names = _family(family, study)
        members = [(spec_dict, records) if name == study else runner.results(name, storage)[1:] for name in names]
        if baseline is not None and baseline not in {a["id"] for a in spec_dict.get("arms", [])}:
            raise EcasweepError(f"--baseline: no arm {baseline!r}; arms: {', '.join(a['id'] for a in spec_dict['arms'])}")
        _print_table(loaded, spec_dict, records, fmt, output, metric=metric, baseline=baseline, test=test,
                     bootstrap=bootstrap, layout=layout, claims_only=claims_only,
                     family=(members, names.index(study)))


def _family(text: str | None, study: str) -> list[str]:
    """The studies of the family ``--family`` names, in its order, with ``study`` first unless named."""
    from ..sweep.reproduce import parse_studies

    if text is None:
        return [study]
    names = parse_studies(text, "--family")
    return names if study in names else [study, *names]


def _check_claims_options(metric: str | None, baseline: str | None, layout: str | None, test: str | None,
                          bootstrap: bool) -> None:
    """``table --claims`` shows the Claims table alone: options of the other table would be ignored.

    The claims are refused on another metric rather than computed on it: they are the paper's, about
    top-1 accuracy (its figures are in the table), and their sequential design is set up for it.
    """
    if metric is not None and metric != "top1":
        raise EcasweepError(f"--metric {metric}: the Claims table (--claims) is on top-1 only, the metric of the "
                            "paper's claims; leave out --metric, or --claims for the table of "
                            f"{metric}")
    given = [option for option, value in (("--baseline", baseline), ("--layout", layout), ("--test", test),
                                           ("--bootstrap", bootstrap or None)) if value is not None]
    if given:
        raise EcasweepError(f"{given[0]} has no effect with --claims, which shows the Claims table alone; "
                            f"leave out {given[0]}, or --claims for the table it shapes")


@app.command()
def compare(
    study: str = typer.Argument(..., help="Study name in the storage."),
    arm_a: str = typer.Argument(..., help="First arm id."),
    arm_b: str = typer.Argument(..., help="Second arm id."),
    storage: Optional[str] = StorageOpt,
    backbone: Optional[str] = typer.Option(None, help="Backbone \\[default: the study's first]."),
    metric: str = typer.Option("top1", help="top1, top5 or loss."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """Two arms seed by seed: the differences, the test, the CI of the difference, P(A beats B).

    Example: [bold]ecasweep compare kernel-size "eca(k=3)" "se(r=16)"[/]
    """
    from ..sweep import runner
    from ..report import compare_arms, render_comparison

    _quiet_libraries()
    with _user_errors():
        _, spec_dict, records = runner.results(study, storage)
        result = _model_errors(lambda: compare_arms(spec_dict, records, arm_a, arm_b, backbone=backbone, metric=metric))
    if as_json:
        _print_json(result)
    else:
        console.print(render_comparison(result))


@app.command()
def plot(
    study: str = typer.Argument(..., help="Study name in the storage."),
    output: Path = typer.Option(..., "--output", "-o", help="Image file: .png or .svg."),
    storage: Optional[str] = StorageOpt,
    metric: str = typer.Option("top1", help="top1, top5 or loss."),
) -> None:
    """The paper-style figure (needs matplotlib: pip install "ecasweep\\[plot]").

    Example: [bold]ecasweep plot kernel-size --output fig4.png[/]
    """
    from ..sweep import runner
    from ..report import plot as draw

    _quiet_libraries()
    with _user_errors():
        if output.suffix.lower() not in (".png", ".svg", ".pdf"):
            raise EcasweepError(f"--output: expected a .png, .svg or .pdf file, got {output.name!r}")
        loaded, spec_dict, records = runner.results(study, storage)
        draw(spec_dict, records, output, metric=metric, study=loaded)
    err.print(f"wrote {output}")


@app.command()
def dashboard(
    study: str = typer.Argument(..., help="Study name in the storage."),
    storage: Optional[str] = StorageOpt,
    port: int = typer.Option(8080, help="Port on 127.0.0.1."),
) -> None:
    """optuna-dashboard on the study's storage, on 127.0.0.1 until Ctrl-C: parameter importances
    (attention, k, backbone, seed), slice, contour, rank, parallel coordinates, every trial's metrics
    (needs: pip install "ecasweep\\[dashboard]").

    Example: [bold]ecasweep dashboard kernel-size --port 8080[/], then open the address it prints
    """
    from ..report.dashboard import serve

    _quiet_libraries()
    with _user_errors():  # Ctrl-C stops the server, which then returns: exit code 0
        serve(study, storage, port, announce=lambda line: console.print(line, highlight=False, soft_wrap=True))
