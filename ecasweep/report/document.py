"""A report to share: the studies' tables and claims with the evidence, in one folder.

``build_report`` gathers, for each study, the same table and Claims table that ``ecasweep table
--format json`` and ``ecasweep table --claims --family STUDIES --format json`` print (the very
objects, so their numbers agree by construction; the claims of all the report's studies are one
family, so the chance of any wrong verdict in the whole report stays below alpha), the commands
that rerun the study and each of its cells, and the machine it ran on: CPU or GPU model, cores, library versions, ecasweep's version and commit, the
dataset and a checksum of its files, the profile and every override. ``write_report`` writes it as
``report.json``, ``report.md`` and ``report.html`` (self-contained: styles inline and figures embedded
as PNG, so it opens offline), each file replaced whole (written beside, then renamed), so a report
on disk is always complete for what it holds, even when the run that writes it is killed.

Example:
    >>> from ecasweep.sweep import runner
    >>> _, spec, records = runner.results("kernel-size")                    # doctest: +SKIP
    >>> write_report(build_report([StudyResults("kernel-size", spec, records)]), Path("out"))  # doctest: +SKIP
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import html
import io
import json
import os
import platform
import shlex
import subprocess
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any, Mapping, Sequence

from .. import __version__
from ..errors import EcasweepError
from ..store.results import TrialRecord

SCHEMA = "ecasweep.report/1"
FILES = ("report.json", "report.md", "report.html")
#: libraries whose versions a report records (those not installed are left out)
LIBRARIES = ("torch", "torchvision", "optuna", "numpy", "scipy", "timm", "matplotlib")


@dataclass(frozen=True)
class StudyResults:
    """One study as read from its storage: its name, stored spec and trials."""

    name: str
    spec: Mapping[str, Any]
    records: Sequence[TrialRecord]


# ------------------------------------------------------------------------------------------ content

def build_report(studies: Sequence[StudyResults], storage_hint: str | None = None) -> dict[str, Any]:
    """The report as plain data (``report.json``). ``storage_hint``: the storage URL to name in the
    commands, masked (``--storage ...``), or None for the default storage."""
    if not studies:
        raise EcasweepError("a report needs at least one study")
    from .verdicts import build_family

    # One family: the chance of any wrong verdict in the whole report stays below alpha
    claims = build_family([(s.spec, s.records) for s in studies])
    names = [s.name for s in studies]
    parts = [_study(s, c, names, storage_hint) for s, c in zip(studies, claims)]
    verdicts: dict[str, int] = {}
    for part in parts:
        for row in part["claims"].get("rows", []):
            verdicts[row["verdict"]] = verdicts.get(row["verdict"], 0) + 1
    return {"schema": SCHEMA, "generated": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
            "environment": environment(), "verdicts": verdicts, "errors": _errors(claims), "studies": parts,
            "commands": {"report": shlex.join(["ecasweep", "report", *(s.name for s in studies), "--output", "DIR",
                                               *_storage_args(storage_hint)])}}


def _errors(tables: Sequence[Any]) -> dict[str, Any]:
    """What the report's verdicts guarantee together: one family over all its studies' claims, or
    (studies stored under different designs) one family per study at shares of alpha adding up to it."""
    one = len({t.design for t in tables}) == 1  # as build_family decides it
    alpha = tables[0].alpha if one else sum(t.alpha for t in tables)
    hypotheses = tables[0].family if one else sum(t.family for t in tables)
    how = (f"one family of {hypotheses} distinct hypotheses under design {tables[0].design}, α recycled across the "
           "studies" if one else "one family per study (their designs differ), each at a share of α in proportion "
           f"to its hypotheses ({', '.join(f'{t.study}: {t.alpha:.3g}' for t in tables)})")
    return {"alpha": round(alpha, 12), "hypotheses": hypotheses, "one_family": one,
            "statement": f"The chance of any wrong verdict in this whole report stays below {alpha:g}, however seeds "
                         f"were added: its claims are {how} (docs/claims.md)."}


def _study(study: StudyResults, claims_table: Any, family: Sequence[str], storage_hint: str | None) -> dict[str, Any]:
    from . import build_table, render, render_claims

    spec = study.spec
    table = json.loads(render(build_table(spec, study.records), "json"))
    claims = json.loads(render_claims(claims_table, "json"))
    overrides = list(spec.get("overrides", []))
    run = ["ecasweep", "run", spec.get("name", study.name), "--profile", spec.get("profile", "quick")]
    for override in overrides:
        run += ["--set", override]
    if study.name != spec.get("name"):
        run += ["--name", study.name]
    return {"name": study.name, "description": spec.get("description", ""), "mirrors": spec.get("mirrors", ""),
            "profile": spec.get("profile"), "overrides": overrides, "seeds": spec.get("seeds"),
            "dataset": dataset_identity(spec.get("data", {})), "trials": sum(r.complete for r in study.records),
            # cells read from another study's finished trial (same model, recipe, data, seed): where from
            "reused": {r.cell: r.metrics["reused_from"] for r in study.records if r.complete and r.metrics.get("reused_from")},
            "table": table, "claims": claims,
            "commands": {"study": shlex.join(run + _storage_args(storage_hint)),
                         # the Claims table as this report decides it (with the other studies of its family)
                         "claims": shlex.join(["ecasweep", "table", study.name, "--claims", "--format", "json",
                                               *(["--family", ",".join(family)] if len(family) > 1 else []),
                                               *_storage_args(storage_hint)]),
                         "cells": _cell_commands(spec, study.records)}}


def _storage_args(storage_hint: str | None) -> list[str]:
    return ["--storage", storage_hint] if storage_hint else []


def _cell_commands(spec: Mapping[str, Any], records: Sequence[TrialRecord]) -> dict[str, str]:
    """``ecasweep train ...`` for every cell with a complete trial (what ``show --cell`` prints)."""
    from ..engine.command import command_line, train_args
    from ..engine.config import RuntimeConfig
    from ..spec import StudySpec

    try:
        study_spec = StudySpec.from_dict(spec)
    except EcasweepError:
        return {}
    if study_spec.search is not None:
        return {}
    cells = {cell.key: cell for cell in study_spec.cells()}
    commands = {}
    for record in records:
        cell = cells.get(record.cell)
        if record.complete and cell is not None:
            commands[record.cell] = command_line(train_args(study_spec.trial_config(cell, RuntimeConfig())))
    return dict(sorted(commands.items()))


def environment() -> dict[str, Any]:
    """The machine and software the report was written on."""
    versions = {}
    for name in LIBRARIES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return {"cpu": _cpu_model(), "cores": os.cpu_count(), "gpu": _gpu(), "platform": platform.platform(),
            "python": platform.python_version(), "ecasweep": __version__, "commit": _commit(), "libraries": versions}


def _cpu_model() -> str:
    try:
        info = Path("/proc/cpuinfo").read_text()
    except OSError:
        info = ""
    for line in info.splitlines():
        if line.startswith("model name"):
            model = line.split(":", 1)[1].strip()
            return model + (" (AVX-512)" if " avx512f" in info else " (AVX2)" if " avx2" in info else "")
    return platform.processor() or platform.machine()


def _gpu() -> str | None:
    import sys

    torch = sys.modules.get("torch")  # only when already imported: a report never pays for importing torch
    if torch is None or not torch.cuda.is_available():
        return None
    return ", ".join(torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count()))


def _commit() -> str | None:
    """ecasweep's git commit (with ``+dirty`` for uncommitted changes), when it runs from a checkout."""
    root = Path(__file__).resolve().parents[2]
    if not (root / ".git").exists():
        return None
    try:
        head = subprocess.run(["git", "-C", str(root), "rev-parse", "HEAD"], capture_output=True, text=True, timeout=10)
        dirty = subprocess.run(["git", "-C", str(root), "status", "--porcelain", "--untracked-files=no"],
                               capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return None
    if head.returncode != 0:
        return None
    return head.stdout.strip() + ("+dirty" if dirty.stdout.strip() else "")


def dataset_identity(data: Mapping[str, Any]) -> dict[str, Any]:
    """The dataset a study trained on and a SHA-256 over its files as found on this machine."""
    name = data.get("dataset", "?")
    out: dict[str, Any] = {"dataset": name, "subset": data.get("subset"), "files": None, "sha256": None}
    if name == "synthetic":
        out["note"] = "generated from the seed: no files"
        return out
    files = _dataset_files(name, data.get("data_dir"))
    if not files:
        out["note"] = "its files were not found on this machine"
        return out
    digest = hashlib.sha256()
    for path in files:
        digest.update(path.name.encode())
        with path.open("rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                digest.update(block)
    out.update(files=[str(p) for p in files], sha256=digest.hexdigest())
    return out


def _dataset_files(name: str, data_dir: str | None) -> list[Path]:
    if name != "fashion-mnist":
        root = Path(data_dir) if data_dir else None
        return sorted(p for p in root.rglob("*") if p.is_file())[:10_000] if root and root.is_dir() else []
    from ..engine.data import DEBIAN_FASHION_MNIST, FASHION_MNIST_FILES, cache_dir, find_idx_files

    places = [data_dir] if data_dir else [os.environ.get("ECASWEEP_DATA"), DEBIAN_FASHION_MNIST, cache_dir()]
    for place in places:
        if place:
            found = find_idx_files(place)
            if len(found) == len(FASHION_MNIST_FILES):
                return [found[n] for n in FASHION_MNIST_FILES]
    return []


# ------------------------------------------------------------------------------------------ writing

def write_report(report: Mapping[str, Any], output: Path, figures: bool = True) -> list[Path]:
    """Write ``report.json``, ``report.md`` and ``report.html`` into ``output`` (created); each file is
    written beside and renamed over the old one. Returns the paths."""
    try:
        output.mkdir(parents=True, exist_ok=True)
    except (FileExistsError, NotADirectoryError):
        raise EcasweepError(f"--output {output}: is a file; give a directory") from None
    except OSError as exc:
        raise EcasweepError(f"--output {output}: cannot create it ({exc.strerror or exc})") from None
    texts = {"report.json": json.dumps(report, indent=2, default=str) + "\n", "report.md": markdown(report),
             "report.html": to_html(report, figures=figures)}
    paths = []
    for name, text in texts.items():
        path = output / name
        tmp = output / f".{name}.tmp"
        try:
            tmp.write_text(text, encoding="utf-8")
            os.replace(tmp, path)
        except OSError as exc:
            tmp.unlink(missing_ok=True)
            raise EcasweepError(f"--output {output}: cannot write {name} ({exc.strerror or exc})") from None
        paths.append(path)
    return paths


def check_output(output: Path) -> None:
    """Refuse an output directory that cannot be written, before anything runs."""
    if output.exists() and not output.is_dir():
        raise EcasweepError(f"--output {output}: is a file; give a directory")
    probe = output if output.exists() else next((p for p in output.parents if p.exists()), Path("."))
    if not os.access(probe, os.W_OK | os.X_OK):
        raise EcasweepError(f"--output {output}: {probe} is not writable")


def _verdict_line(report: Mapping[str, Any]) -> str:
    counts = report.get("verdicts", {})
    return ", ".join(f"{n} {verdict}" for verdict, n in sorted(counts.items())) or "no claims"


def _claim_rows(part: Mapping[str, Any]) -> list[dict[str, Any]]:
    return list(part["claims"].get("rows", []))


def _fmt(x: Any, sign: bool = False) -> str:
    if x is None:
        return "–"
    if isinstance(x, float):
        return f"{x:+.2f}" if sign else f"{x:.2f}"
    return str(x)


def _interval(row: Mapping[str, Any]) -> str:
    low, high = row.get("low"), row.get("high")
    return "–" if low is None and high is None else f"[{_fmt(low, True)}, {_fmt(high, True)}]"


def markdown(report: Mapping[str, Any]) -> str:
    """The report as Markdown: the environment, then each study's claims, table and commands."""
    env = report["environment"]
    lines = ["# ecasweep report", "", f"Generated {report['generated']}. Verdicts: {_verdict_line(report)}.", "",
             report.get("errors", {}).get("statement", ""), "", "## Environment", "", "| | |", "|---|---|"]
    for key in ("cpu", "cores", "gpu", "platform", "python", "ecasweep", "commit"):
        lines.append(f"| {key} | {env.get(key) if env.get(key) is not None else '–'} |")
    lines.append(f"| libraries | {', '.join(f'{k} {v}' for k, v in env.get('libraries', {}).items())} |")
    for part in report["studies"]:
        data = part["dataset"]
        lines += ["", f"## {part['name']}" + (f" ({part['mirrors']})" if part.get("mirrors") else ""), "",
                  part.get("description", ""), "",
                  f"Profile `{part['profile']}`, overrides: {', '.join(f'`{o}`' for o in part['overrides']) or 'none'}; "
                  f"{part['trials']} trials ({len(part.get('reused', {}))} read from other studies' identical trials); "
                  f"dataset {data['dataset']}"
                  + (f", sha256 `{data['sha256']}`" if data.get("sha256") else f" ({data.get('note', '')})"), "",
                  "### Claims", ""]
        rows = _claim_rows(part)
        if rows:
            lines += ["| claim | backbone | verdict | effect | interval | seeds | paper |", "|---|---|---|--:|--:|--:|--:|"]
            for r in rows:
                lines.append(f"| {_cell(r.get('words', ''))} | {r.get('backbone', '')} | {r.get('verdict')} | "
                             f"{_fmt(r.get('effect'), True)} | {_interval(r)} | {_fmt(r.get('n'))} | {_fmt(r.get('paper'))} |")
        else:
            lines.append("No claims declared.")
        lines += ["", "### Table", "", _markdown_table(part["table"]), "", "### Commands", "", "```bash",
                  part["commands"]["study"], part["commands"]["claims"], "```"]
        if part["commands"]["cells"]:
            lines += ["", "<details><summary>Every cell</summary>", "", "```bash"]
            lines += [f"# {key}\n{cmd}" for key, cmd in part["commands"]["cells"].items()]
            lines += ["```", "", "</details>"]
    lines += ["", "## The whole report", "", "```bash", report["commands"]["report"], "```", ""]
    return "\n".join(lines)


def _cell(text: Any) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


#: the table columns a report shows (``table --format json`` has them all)
COLUMNS = ("backbone", "label", "n", "mean", "std", "ci_low", "ci_high", "delta", "p_value", "paper")


def _columns(rows: Sequence[Mapping[str, Any]]) -> list[str]:
    return [c for c in COLUMNS if any(r.get(c) is not None for r in rows)]


def _markdown_table(data: Mapping[str, Any]) -> str:
    rows = data.get("rows", [])
    if not rows:
        return "(no trials yet)"
    columns = _columns(rows)
    lines = ["| " + " | ".join(columns) + " |", "|" + "|".join("--:" if c not in ("backbone", "label") else "---"
                                                               for c in columns) + "|"]
    lines += ["| " + " | ".join(_cell(_fmt(r.get(c))) for c in columns) + " |" for r in rows]
    return "\n".join(lines)


# --------------------------------------------------------------------------------------------- html

_STYLE = """body{font-family:system-ui,sans-serif;max-width:1100px;margin:2em auto;padding:0 1em;color:#222}
table{border-collapse:collapse;margin:1em 0;font-size:14px}th,td{border-bottom:1px solid #ddd;padding:4px 8px;text-align:left}
td.n{text-align:right;font-variant-numeric:tabular-nums}.supported{color:#1a7f37}.contradicted{color:#cf222e}
.open{color:#9a6700}code,pre{background:#f6f8fa;padding:2px 4px}pre{padding:8px;overflow-x:auto}img{max-width:100%}"""


def to_html(report: Mapping[str, Any], figures: bool = True) -> str:
    """The report as one HTML page with everything inline (no network, no other file)."""
    e = html.escape
    env = report["environment"]
    out = [f"<!doctype html><html lang='en'><head><meta charset='utf-8'><title>ecasweep report</title>"
           f"<style>{_STYLE}</style></head><body>", "<h1>ecasweep report</h1>",
           f"<p>Generated {e(report['generated'])}. Verdicts: {e(_verdict_line(report))}.</p>",
           f"<p>{e(report.get('errors', {}).get('statement', ''))}</p>",
           "<h2>Environment</h2><table>"]
    for key in ("cpu", "cores", "gpu", "platform", "python", "ecasweep", "commit"):
        out.append(f"<tr><th>{e(key)}</th><td>{e(str(env.get(key) if env.get(key) is not None else '–'))}</td></tr>")
    out.append(f"<tr><th>libraries</th><td>{e(', '.join(f'{k} {v}' for k, v in env.get('libraries', {}).items()))}</td></tr></table>")
    for part in report["studies"]:
        data = part["dataset"]
        out += [f"<h2 id='{e(part['name'])}'>{e(part['name'])}{' (' + e(part['mirrors']) + ')' if part.get('mirrors') else ''}</h2>",
                f"<p>{e(part.get('description', ''))}</p>",
                f"<p>Profile <code>{e(str(part['profile']))}</code>, overrides: "
                f"{', '.join('<code>' + e(o) + '</code>' for o in part['overrides']) or 'none'}; {part['trials']} trials; "
                f"dataset {e(str(data['dataset']))}"
                + (f", sha256 <code>{e(data['sha256'])}</code>" if data.get("sha256") else f" ({e(data.get('note', ''))})") + "</p>",
                "<h3>Claims</h3>"]
        rows = _claim_rows(part)
        if rows:
            out.append("<table><tr><th>claim</th><th>backbone</th><th>verdict</th><th>effect</th><th>interval</th>"
                       "<th>seeds</th><th>paper</th></tr>")
            for r in rows:
                verdict = str(r.get("verdict"))
                out.append(f"<tr><td>{e(str(r.get('words', '')))}</td><td>{e(str(r.get('backbone', '')))}</td>"
                           f"<td class='{e(verdict.split()[0])}'>{e(verdict)}</td><td class='n'>{e(_fmt(r.get('effect'), True))}</td>"
                           f"<td class='n'>{e(_interval(r))}</td><td class='n'>{e(_fmt(r.get('n')))}</td>"
                           f"<td class='n'>{e(_fmt(r.get('paper')))}</td></tr>")
            out.append("</table>")
            if figures:
                out.append(_img(_forest_plot(rows), f"forest plot of the claims of {part['name']}"))
        else:
            out.append("<p>No claims declared.</p>")
        out += ["<h3>Table</h3>", _html_table(part["table"])]
        out += ["<h3>Commands</h3>", f"<pre>{e(part['commands']['study'])}\n{e(part['commands']['claims'])}</pre>"]
        if part["commands"]["cells"]:
            out.append("<details><summary>Every cell</summary><pre>"
                       + e("\n".join(f"# {k}\n{c}" for k, c in part["commands"]["cells"].items())) + "</pre></details>")
    out += ["<h2>The whole report</h2>", f"<pre>{e(report['commands']['report'])}</pre>", "</body></html>"]
    return "\n".join(out) + "\n"


def _html_table(data: Mapping[str, Any]) -> str:
    e = html.escape
    rows = data.get("rows", [])
    if not rows:
        return "<p>(no trials yet)</p>"
    columns = _columns(rows)
    out = ["<table><tr>" + "".join(f"<th>{e(c)}</th>" for c in columns) + "</tr>"]
    for r in rows:
        out.append("<tr>" + "".join(f"<td class='n'>{e(_fmt(r.get(c)))}</td>" if isinstance(r.get(c), (int, float))
                                    else f"<td>{e(_fmt(r.get(c)))}</td>" for c in columns) + "</tr>")
    return "\n".join(out) + "</table>"


def _img(png: bytes | None, alt: str) -> str:
    if png is None:
        return "<p><i>(figures need matplotlib: pip install 'ecasweep[plot]')</i></p>"
    return f"<img alt='{html.escape(alt)}' src='data:image/png;base64,{base64.b64encode(png).decode()}'>"


def _forest_plot(rows: Sequence[Mapping[str, Any]]) -> bytes | None:
    """Each claim's effect and interval against its margin (0 for superiority), as a PNG."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    shown = [r for r in rows if r.get("effect") is not None]
    fig, ax = plt.subplots(figsize=(7, 0.35 * max(3, len(shown)) + 1))
    for i, r in enumerate(shown):
        low, high = r.get("low"), r.get("high")
        color = {"supported": "tab:green", "contradicted": "tab:red"}.get(str(r.get("verdict")), "tab:gray")
        if low is not None and high is not None:
            ax.plot([low, high], [i, i], color=color, lw=2)
        ax.plot([r["effect"]], [i], "o", color=color)
        margin = r.get("margin")
        for m in ([0.0] if not margin else [-margin, margin] if r.get("kind") == "equivalence" else [-margin]):
            ax.plot([m, m], [i - 0.4, i + 0.4], color="black", lw=1)
    ax.set_yticks(range(len(shown)))
    ax.set_yticklabels([f"{str(r.get('words', ''))[:48]} ({r.get('backbone', '')})" for r in shown], fontsize=7)
    ax.axvline(0, color="gray", lw=0.5, ls=":")
    ax.set_xlabel("effect (points), sequential interval; bars: margins")
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=100)
    plt.close(fig)
    return buffer.getvalue()
