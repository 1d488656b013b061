"""The command-line interface: a thin Typer layer that parses, calls one library function, and
formats. Nothing in the library imports it.
"""

from .app import app, main

__all__ = ["app", "main"]
