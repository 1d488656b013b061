"""The ``ecasweep`` command line: a thin Typer layer over the library.

Each command parses its options, calls the library, and formats. Errors a user can cause end in one
line on stderr and exit code 2; exit code 1 means trial failures remain, 130 an interruption
(Ctrl-C), 143 a SIGTERM.

    ecasweep run kernel-size                       # the paper's Figure 4 ablation, quick profile
    ecasweep table kernel-size --format latex      # its table, for a paper
"""

from __future__ import annotations

from . import trial, studies, scaffold, running, reports, sharing, benchmarks  # noqa: F401  (registers the commands, in --help's order)
from .common import app


def main() -> None:
    """Console entry point."""
    app()
