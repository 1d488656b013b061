"""What every command shares: the Typer app, the consoles, the common options, and turning user
errors into one line and exit code 2 (130 for Ctrl-C, 143 for SIGTERM)."""

from __future__ import annotations

import contextlib
import json
import logging
import sys
import warnings
from pathlib import Path
from typing import Any, Iterator, NoReturn

import typer
from rich.console import Console
from rich.table import Table

from ..errors import EcasweepError


# No locals in tracebacks: they would print storage URLs, passwords included.
app = typer.Typer(add_completion=False, no_args_is_help=True, rich_markup_mode="rich",
                  pretty_exceptions_show_locals=False,
                  help="Re-run and extend the ECA-Net channel-attention ablations, with honest statistics.")


console = Console()


err = Console(stderr=True)


EXIT_FAILURES, EXIT_USAGE = 1, 2


StudyArg = typer.Argument(..., help="Study name (see `ecasweep list`) or path to a .toml file.")


ProfileOpt = typer.Option("quick", "--profile", "-p", help="Scale: quick (CPU, minutes), cifar (GPU), imagenet.")


SetOpt = typer.Option(None, "--set", "-s", help="Override a field, e.g. --set train.epochs=5 (TOML value).")


StorageOpt = typer.Option(None, "--storage", envvar="ECASWEEP_STORAGE",
                          help="Optuna storage URL \\[default: sqlite:///ecasweep.db].")


NameOpt = typer.Option(None, "--name", help="Optuna study name \\[default: the study's own name].")


def _version(value: bool) -> None:
    if value:
        from .. import __version__

        sys.stdout.write(f"ecasweep {__version__}\n")
        raise typer.Exit()


@app.callback()
def _app(version: bool = typer.Option(False, "--version", callback=_version, is_eager=True,
                                      help="Print the version and exit.")) -> None:
    """Re-run and extend the ECA-Net channel-attention ablations, with honest statistics."""


@contextlib.contextmanager
def _user_errors(quiet_interrupt: bool = False, interrupted: str | None = None) -> Iterator[None]:
    """One line and exit code 2 for errors the user can fix; 130 for Ctrl-C, 143 for SIGTERM
    (``signals``), with one line unless ``quiet_interrupt`` (workers started by ``run``, whose
    parent says it once).

    A storage that fails mid-command (the server went away, the disk is full) is one of those too.
    """
    from rich.markup import escape

    try:
        yield
    except EcasweepError as exc:
        from ..store.storage import mask_url  # imported here: optuna, which it needs, takes 0.3 s

        # escape: messages hold brackets ("[data]", "ecasweep[postgres]") that are not Rich markup
        err.print(f"[bold red]error:[/] {escape(mask_url(str(exc)))}", highlight=False, soft_wrap=True)
        raise typer.Exit(EXIT_USAGE) from None
    except Exception as exc:
        from ..store.storage import storage_failure
        from ..sweep.signals import interruption

        stop = interruption()
        if stop is not None:  # an error a stop caused (``signals``): the stop, said as one
            _interrupted(quiet_interrupt, interrupted, stop)
        failure = storage_failure(exc)
        if failure is None:
            raise
        err.print(f"[bold red]error:[/] {escape(failure)}", highlight=False, soft_wrap=True)
        raise typer.Exit(EXIT_USAGE) from None
    except KeyboardInterrupt as exc:
        _interrupted(quiet_interrupt, interrupted, exc)


def _interrupted(quiet: bool, line: str | None, stop: KeyboardInterrupt) -> NoReturn:
    """The stop's line (``line``: that of a command without trials in a storage) and exit code."""
    from ..sweep.signals import exit_code

    if not quiet:
        err.print(line or "[yellow]interrupted[/]: running trials were marked 'interrupted'; "
                  "run the same command to resume")
    raise typer.Exit(exit_code(stop)) from None


def _quiet_libraries() -> None:
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    # Heartbeats and fail_stale_trials are marked experimental; they are what resuming relies on.
    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")


def _print_json(data: Any) -> None:
    sys.stdout.write(json.dumps(data, indent=2, default=str) + "\n")


#: why some of timm's modules are not offered (train --help, run --help)
_TIMM_OUT_OF_SCOPE = ("Not offered: timm's sk, splat, lambda, halo and bottleneck, which replace the block's "
                      "convolution rather than re-weight its output.")


def _default(value: Any) -> str:
    return f" \\[default: {value}]"  # escaped: Rich would read [default: ...] as markup


def _model_errors(fn):
    """Attention and backbone arguments raise ValueError naming the argument: a user error here."""
    try:
        return fn()
    except ValueError as exc:
        if isinstance(exc, EcasweepError):
            raise
        raise EcasweepError(str(exc)) from None


def _table(title: str) -> Table:
    """A table that fits 80 columns: no outer border, one space between columns."""
    from rich import box

    return Table(title=title, box=box.SIMPLE_HEAD, pad_edge=False, padding=(0, 1))


def _plural(n: int, word: str) -> str:
    return f"{n:,} {word}" + ("" if n == 1 else "s")


#: the text format of an --output file, from its extension
FORMAT_BY_SUFFIX = {".md": "markdown", ".markdown": "markdown", ".csv": "csv", ".json": "json", ".tex": "latex"}


def _output_format(fmt: str | None, output: Path | None) -> str:
    """The format to render: --format, else the --output file's extension; an unusable output is refused
    before anything is read or written."""
    if fmt is not None:
        from ..report.render import FORMATS

        _check_choice("--format", fmt, FORMATS)
    if output is None:
        return fmt or "rich"
    if output.is_dir():
        raise EcasweepError(f"--output {output}: is a directory; give a file name, e.g. {output / 'table.tex'}")
    if not output.parent.is_dir():
        raise EcasweepError(f"--output {output}: directory {output.parent} does not exist")
    fmt = fmt or FORMAT_BY_SUFFIX.get(output.suffix.lower())
    if fmt is None:
        raise EcasweepError(f"--output {output}: cannot tell the format from {output.suffix or 'no extension'!r}; "
                            f"use .md, .csv, .json or .tex, or give --format")
    if fmt == "rich":
        raise EcasweepError("--output needs a text format: --format markdown, csv, json or latex")
    return fmt


def _check_choice(option: str, value: str, choices: tuple[str, ...]) -> None:
    if value not in choices:
        raise EcasweepError(f"{option}: expected one of {', '.join(choices)}, got {value!r}")
