"""``ecasweep new``: a study that tests your own attention module against the paper's references."""

from __future__ import annotations

import re
from pathlib import Path

import typer

from ..errors import EcasweepError
from .common import app, console, _user_errors

_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")

STUDY = '''\
# Written by `ecasweep new`: does {cls} beat no attention, SE and ECA under the ECA-Net paper's
# protocol (same seeds, same data order, same recipe, verdicts that hold their error rate)?
#   ecasweep show {file}          # the arms, cells and claims
#   ecasweep run {file}           # quick profile: Fashion-MNIST on resnet-8 and resnet-14 (CPU)
#   ecasweep table {name} --claims
# docs/user-modules.md describes the contract {cls} meets and what a study records of its code.
name = "{name}"
description = "{cls} ({where}) against no attention, SE (r=16) and ECA (adaptive k and k=3)"
mirrors = "Tables 2 and 3, a new module"
layout = "table3"  # the table adds parameters, MACs and images/s per arm
baseline = "none"
# Margin of the non-inferiority and equivalence claims, in percentage points of top-1
# (--set margin=0.3 to change it).
margin = 0.5

[[arms]]
attention = "none"

[[arms]]
attention = "se"
r = 16

[[arms]]  # Eq. (12) of the paper: k from the channel count
attention = "eca"
k = "adaptive"

[[arms]]
attention = "eca"
k = 3

[[arms]]
attention = "{ref}"
id = "{cls}"
# {cls}'s keyword arguments go here, like a built-in's (e.g. k = 5); a [[grid]] table with
# attention = "{ref}" and a list (k = [3, 5]) tries several.

[[claims]]
kind = "superiority"
a = "{cls}"
b = "none"
words = "{cls} beats the vanilla network"

[[claims]]
kind = "non-inferiority"
a = "{cls}"
b = ["eca(k=3)", "eca(k=adaptive,gamma=2,beta=1)"]
words = "{cls} is at least as accurate as ECA, within the margin"

[[claims]]
kind = "equivalence"
a = "{cls}"
b = "se(r=16)"
words = "{cls} is as accurate as SE (r=16), whose cost the table shows beside its own (params, MACs)"
'''

MODULE = '''\
"""{cls}: a channel-attention module for ecasweep (written by `ecasweep new`; make it yours).

The contract (docs/user-modules.md): ``{cls}(channels, **kwargs)`` is an ``nn.Module`` whose forward
maps a feature map (N, C, H, W) to one of the same shape. ecasweep puts one in every block of every
backbone where its own SE and ECA go (after the block's last BatchNorm, before the residual
addition), built with the keyword arguments of the study's arm. It starts as ECA's gate (a 1-D
convolution of size k across the pooled channels): replace ``gate`` with your idea.
"""

import torch
from torch import nn


class {cls}(nn.Module):
    def __init__(self, channels: int, k: int = 3) -> None:
        super().__init__()
        if k < 1 or k % 2 == 0:
            raise ValueError(f"k must be an odd integer >= 1, got {{k}}")
        self.conv = nn.Conv1d(1, 1, k, padding=k // 2, bias=False)

    def gate(self, y: torch.Tensor) -> torch.Tensor:
        """(N, C) pooled features -> (N, C) weights in (0, 1)."""
        return torch.sigmoid(self.conv(y[:, None, :])[:, 0])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = x.mean((2, 3))                      # squeeze: (N, C)
        return x * self.gate(y)[:, :, None, None].to(x.dtype)  # excite: the shape of x
'''


@app.command("new")
def new(name: str = typer.Argument(..., help="The study's name; writes NAME.toml."),
        attention: str = typer.Option(..., "--attention", "-a",
                                      help="Your module: my_attn.py:MyAttention (a file, next to the study; "
                                           "a template is written when it does not exist), "
                                           "my_pkg.attn:MyAttention, or an entry-point name."),
        directory: Path = typer.Option(Path("."), "--dir", help="Where to write the files."),
        force: bool = typer.Option(False, "--force", help="Overwrite NAME.toml if it exists.")) -> None:
    """Write a study comparing your attention module with none, SE (r=16) and ECA (adaptive, k=3).

    The study has the claims a paper would make: superiority over the vanilla network,
    non-inferiority to ECA within a margin, equivalence with SE (beside its cost).

    Example: [bold]ecasweep new my-study --attention my_attn.py:MyAttention[/]
    """
    with _user_errors():
        written = _scaffold(name, attention, directory, force)
    for path, what in written:
        console.print(f"wrote {path}  [dim]({what})[/]", highlight=False)
    study = written[0][0]
    console.print(f"next: [bold]ecasweep show {study}[/], then [bold]ecasweep run {study}[/]", highlight=False)


def _scaffold(name: str, attention: str, directory: Path, force: bool) -> list[tuple[Path, str]]:
    """Write the study (and a module template for a file that does not exist), check that the study
    loads, and return what was written; on any error nothing is left written."""
    from ..models import user
    from ..models.catalogue import VARIANTS

    if not _NAME.fullmatch(name or "") or name.endswith(".toml"):
        raise EcasweepError(f"new: {name!r}: expected a study name of letters, digits, '-', '_' or '.', "
                            "e.g. my-study (without .toml)")
    if not directory.is_dir():
        raise EcasweepError(f"new: --dir {directory}: no such directory")
    if attention in VARIANTS:
        raise EcasweepError(f"new: --attention {attention!r} is a built-in; name your own module, e.g. "
                            "my_attn.py:MyAttention")
    study = directory / f"{name}.toml"
    if study.exists() and not force:
        raise EcasweepError(f"new: {study} exists; choose another name, or --force to overwrite it")
    module_path = None
    try:
        if user.is_reference(attention):
            target, cls = user.parse(attention)
            if user.is_file_target(target):
                if Path(target).is_absolute() or ".." in Path(target).parts:
                    raise EcasweepError(f"new: --attention {attention!r}: give the file relative to the study, "
                                        "e.g. my_attn.py:MyAttention")
                module_path = directory / target
                if module_path.exists() or "." in cls:
                    module_path = None
        else:
            cls = attention
    except user.UserCodeError as e:
        raise EcasweepError(f"new: --attention {e}") from None
    written: list[tuple[Path, str]] = []
    previous = study.read_text(encoding="utf-8") if study.exists() else None  # --force: restored on error
    try:
        if module_path is not None:
            module_path.parent.mkdir(parents=True, exist_ok=True)
            module_path.write_text(MODULE.format(cls=cls), encoding="utf-8")
            written.append((module_path, f"a template of {cls}: ECA's gate, to replace with yours"))
        where = attention.rpartition(":")[0] if user.is_reference(attention) else f"entry point {attention}"
        study.write_text(STUDY.format(name=name, cls=cls.rpartition(".")[2], ref=attention, where=where,
                                      file=study), encoding="utf-8")
        written.insert(0, (study, "none, SE (r=16), ECA adaptive and k=3, and yours; 3 claims"))
        from ..spec import load_study

        load_study(str(study))  # the module imported, its arguments and output shape checked
    except BaseException:
        for path, _ in written:
            path.unlink(missing_ok=True)
        if previous is not None:
            study.write_text(previous, encoding="utf-8")
        raise
    return written
