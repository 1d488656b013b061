"""The ``ecasweep`` command line: a thin Typer layer over the library.

Each command parses its options, calls the library, and formats. Errors a user can cause end in one
line on stderr and exit code 2; exit code 1 means trial failures remain, 130 an interruption
(Ctrl-C), 143 a SIGTERM.

    ecasweep run kernel-size                       # the paper's Figure 4 ablation, quick profile
    ecasweep table kernel-size --format latex      # its table, for a paper
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import logging
import sys
import warnings
from pathlib import Path
from typing import Any, Iterator, Optional

import typer
from rich.console import Console
from rich.table import Table

from ..engine.config import DataConfig, TrainConfig
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

        failure = storage_failure(exc)
        if failure is None:
            raise
        err.print(f"[bold red]error:[/] {escape(failure)}", highlight=False, soft_wrap=True)
        raise typer.Exit(EXIT_USAGE) from None
    except KeyboardInterrupt as exc:
        from ..sweep.signals import exit_code

        if not quiet_interrupt:  # ``interrupted``: the line of a command without trials in a storage
            err.print(interrupted or "[yellow]interrupted[/]: running trials were marked 'interrupted'; "
                      "run the same command to resume")
        raise typer.Exit(exit_code(exc)) from None


def _quiet_libraries() -> None:
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    # Heartbeats and fail_stale_trials are marked experimental; they are what resuming relies on.
    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")


def _print_json(data: Any) -> None:
    sys.stdout.write(json.dumps(data, indent=2, default=str) + "\n")


# ------------------------------------------------------------------------------------------ train

_DATA, _TRAIN = DataConfig(), TrainConfig()


#: why some of timm's modules are not offered (train --help, run --help)
_TIMM_OUT_OF_SCOPE = ("Not offered: timm's sk, splat, lambda, halo and bottleneck, which replace the block's "
                      "convolution rather than re-weight its output.")


def _default(value: Any) -> str:
    return f" \\[default: {value}]"  # escaped: Rich would read [default: ...] as markup


@app.command()
def train(
    backbone: str = typer.Option("resnet-20", help="Backbone, e.g. resnet-20, resnet-50, mobilenet-v2."),
    attention: str = typer.Option("eca", help="Attention variant: none, se, se-var1/2/3, se-gc, eca-ns, eca, ceca; "
                                  "with the timm extra (pip install 'ecasweep\\[timm]') also timm's cbam, lcbam, "
                                  "ge-theta-minus, ge-theta, ge-theta-plus, gc, gca, ese, nl. " + _TIMM_OUT_OF_SCOPE),
    k: Optional[str] = typer.Option(None, help="ECA kernel size: odd int, 'adaptive', or per stage '3,5,5,7'."),
    gamma: Optional[float] = typer.Option(None, help="Adaptive k: gamma (default 2)."),
    beta: Optional[float] = typer.Option(None, help="Adaptive k: beta (default 1)."),
    min_k: Optional[int] = typer.Option(None, help="Adaptive k: smallest k (default 1)."),
    r: Optional[int] = typer.Option(None, help="SE reduction ratio (default 16)."),
    groups: Optional[int] = typer.Option(None, help="SE-GC: number of groups."),
    group_size: Optional[int] = typer.Option(None, help="SE-GC: channels per group."),
    bias: Optional[bool] = typer.Option(None, "--bias/--no-bias", help="Bias in the attention's layers."),
    round_to: Optional[int] = typer.Option(None, help="SE: round the hidden width to a multiple of this."),
    spatial_k: Optional[int] = typer.Option(None, help="CBAM: kernel size of the spatial gate (default 7)."),
    extent: Optional[int] = typer.Option(None, help="Gather-Excite: gather extent, 0 (global) or a power of two."),
    width: Optional[int] = typer.Option(None, help="Base width of CIFAR-style ResNets (default 16)."),
    dataset: str = typer.Option(_DATA.dataset, help="fashion-mnist, cifar10, cifar100, imagenet, imagefolder, synthetic."),
    data_dir: Optional[str] = typer.Option(None, "--data-dir", help="Where the dataset is; it must hold it "
                                           "\\[default: $ECASWEEP_DATA, Debian's package, the download cache]."),
    subset: Optional[int] = typer.Option(None, help="Training images kept (stratified) \\[default: all]."),
    val_split: int = typer.Option(_DATA.val_split, help="Training images held out for validation."),
    augment: bool = typer.Option(_DATA.augment, "--augment/--no-augment", help="Random crop and flip."),
    synthetic_size: int = typer.Option(_DATA.synthetic_size, help="Training images of the synthetic dataset."),
    num_workers: int = typer.Option(_DATA.num_workers, help="DataLoader workers (folder datasets only)."),
    epochs: int = typer.Option(2, help="Epochs."),
    batch_size: Optional[int] = typer.Option(None, help="Batch size." + _default(_TRAIN.batch_size)),
    lr: Optional[float] = typer.Option(None, help="Peak learning rate." + _default(_TRAIN.lr)),
    momentum: Optional[float] = typer.Option(None, help="SGD momentum." + _default(_TRAIN.momentum)),
    nesterov: Optional[bool] = typer.Option(None, "--nesterov/--no-nesterov", help="Nesterov momentum."
                                            + _default("no-nesterov")),
    weight_decay: Optional[float] = typer.Option(None, help="Weight decay." + _default(_TRAIN.weight_decay)),
    label_smoothing: Optional[float] = typer.Option(None, help="Label smoothing." + _default(_TRAIN.label_smoothing)),
    schedule: Optional[str] = typer.Option(None, help="step, cosine, onecycle, exponential, constant."
                                           + _default(_TRAIN.schedule)),
    step_size: Optional[int] = typer.Option(None, help="step: epochs between decays." + _default(_TRAIN.step_size)),
    step_gamma: Optional[float] = typer.Option(None, help="step, exponential: decay factor." + _default(_TRAIN.step_gamma)),
    warmup_epochs: Optional[float] = typer.Option(None, help="Linear warm-up epochs." + _default(_TRAIN.warmup_epochs)),
    eval_every: Optional[int] = typer.Option(None, help="Evaluate every N epochs (0: at the end only)."
                                             + _default(_TRAIN.eval_every)),
    eval_batch_size: Optional[int] = typer.Option(None, help="Evaluation batch size." + _default(_TRAIN.eval_batch_size)),
    recipe: Optional[str] = typer.Option(None, help="A named recipe (imagenet-resnet, imagenet-mobilenetv2); "
                                                    "the options above override its fields."),
    seed: int = typer.Option(0, help="Seed: initialisation, data order, subset, augmentation."),
    device: str = typer.Option("auto", help="cpu, cuda, cuda:N, mps or auto."),
    threads: Optional[int] = typer.Option(None, help="CPU threads \\[default: PyTorch's]."),
    amp: str = typer.Option("auto", help="Autocast: auto (bf16 on GPU), bf16, fp16, off."),
    compile: bool = typer.Option(False, "--compile", help="torch.compile the model."),
    checkpoint_dir: Optional[str] = typer.Option(None, help="Checkpoint every epoch here; resume if one exists."),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bar."),
) -> None:
    """Train one model and print its metrics. Every field a study sets with --set train.* or data.*
    is an option of the same name; `ecasweep show STUDY --cell ID` prints the command for one cell.

    Example: [bold]ecasweep train --backbone resnet-20 --attention eca --k 3 --subset 5000 --epochs 2[/]
    """
    from ..engine.config import RECIPES, ModelConfig, RuntimeConfig, TrialConfig

    resume = "; run the same command to resume from the last checkpoint" if checkpoint_dir else ""
    with _user_errors(interrupted=f"[yellow]interrupted[/]{resume}"):
        from ..errors import NonFiniteLossError
        from ..engine.train import run_trial

        arm = dict(k=_parse_k(k), gamma=gamma, beta=beta, min_k=min_k, r=r, groups=groups, group_size=group_size,
                   bias=bias, round_to=round_to, spatial_k=spatial_k, extent=extent)
        if recipe is not None and recipe not in RECIPES:
            raise EcasweepError(f"--recipe: unknown recipe {recipe!r}; expected one of {', '.join(RECIPES)}")
        recipe_fields = dict(batch_size=batch_size, lr=lr, momentum=momentum, nesterov=nesterov,
                             weight_decay=weight_decay, label_smoothing=label_smoothing, schedule=schedule,
                             step_size=step_size, step_gamma=step_gamma, warmup_epochs=warmup_epochs,
                             eval_every=eval_every, eval_batch_size=eval_batch_size)
        given = {key: value for key, value in recipe_fields.items() if value is not None}
        base = RECIPES[recipe] if recipe else dataclasses.replace(_TRAIN, epochs=epochs)
        if recipe and epochs != 2:  # --epochs has a default of its own; given, it overrides the recipe's
            given["epochs"] = epochs
        config = TrialConfig(ModelConfig(backbone, attention, {a: v for a, v in arm.items() if v is not None}, width),
                             DataConfig(dataset, data_dir, subset, val_split, augment, synthetic_size, num_workers),
                             dataclasses.replace(base, **given), seed,
                             RuntimeConfig(device=device, amp=amp, compile=compile, threads=threads,
                                           checkpoint_dir=checkpoint_dir, keep_checkpoints=False,
                                           quiet=quiet or as_json))
        try:
            result = _model_errors(lambda: run_trial(config))
        except NonFiniteLossError as exc:  # the trial failed (exit 1, as a failed cell of `run`)
            err.print(f"[bold red]failed:[/] {exc}; try a lower --lr", highlight=False, soft_wrap=True)
            raise typer.Exit(EXIT_FAILURES) from None
    if as_json:
        metrics = result.metrics()
        metrics.pop("history")
        _print_json(metrics)
        return
    table = Table(title=f"{backbone} + {attention} on {dataset}, seed {seed}")
    table.add_column("metric")
    table.add_column("value", justify="right")
    for key in ("top1", "top5", "loss", "val_top1", "epochs", "images_per_second", "wall_seconds",
                "total_params", "attention_params", "flops", "kernel_sizes", "device"):
        value = getattr(result, key)
        if value is not None:
            table.add_row(key, f"{value:,.2f}" if isinstance(value, float) else f"{value:,}" if isinstance(value, int) else str(value))
    console.print(table)


def _parse_k(k: str | None) -> Any:
    if k is None:
        return None
    if k == "adaptive":
        return k
    try:
        values = [int(v) for v in k.replace(" ", "").split(",")]
    except ValueError:
        raise EcasweepError(f"--k: expected an odd integer, 'adaptive', or a list like 3,5,5,7; got {k!r}") from None
    return values[0] if len(values) == 1 else values


def _model_errors(fn):
    """Attention and backbone arguments raise ValueError naming the argument: a user error here."""
    try:
        return fn()
    except ValueError as exc:
        if isinstance(exc, EcasweepError):
            raise
        raise EcasweepError(str(exc)) from None


# ------------------------------------------------------------------------------------ studies

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
        table.add_row(arm.id, arm.attention, *ks)
    console.print(table)
    from ..spec import alias_notes

    for line in alias_notes(spec):
        console.print(line, highlight=False)
    if spec.search is None:
        shared = sum(len(a) for a in spec.aliases().values()) * spec.seeds
        extra = len(spec.cells()) + shared - len(spec.arms) * len(spec.backbones) * spec.seeds  # extra_seeds
        console.print(f"{_plural(len(spec.cells()), 'cell')} = {_plural(len(spec.arms), 'arm')} x "
                      f"{_plural(len(spec.backbones), 'backbone')} x {_plural(spec.seeds, 'seed')}"
                      + (f", less {shared} of aliases" if shared else "")
                      + (f", plus {extra} added seeds" if extra else ""), highlight=False)
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
    relation = {"superiority": ">", "non-inferiority": ">=", "equivalence": "≈"}
    groups: dict[tuple[str, str], list[str]] = {}
    for c in spec.claims:
        kind = c.kind if c.kind == "superiority" else f"{c.kind}, margin {c.margin:g} points"
        groups.setdefault((c.words, kind), []).append(f"{c.a} {relation[c.kind]} {c.b}")
    console.print(f"[bold]claims[/]: {_plural(len(spec.claims), 'pair')} of arms, each tested on every backbone "
                  f"(verdicts: `ecasweep table {escape(spec.name)} --claims`)", highlight=False)
    for (words, kind), pairs in groups.items():
        console.print(Padding(f"{escape(words)} [dim]({kind})[/]", (0, 0, 0, 2)), highlight=False)
        console.print(Padding(escape(", ".join(pairs)), (0, 0, 0, 6)), style="dim", highlight=False)


def _table(title: str) -> Table:
    """A table that fits 80 columns: no outer border, one space between columns."""
    from rich import box

    return Table(title=title, box=box.SIMPLE_HEAD, pad_edge=False, padding=(0, 1))


def _plural(n: int, word: str) -> str:
    return f"{n:,} {word}" + ("" if n == 1 else "s")


def _print_cell_command(spec, key: str) -> None:
    """The train command of one cell on stdout; on stderr, on which device and threads it matches."""
    from ..engine.config import RuntimeConfig
    from ..spec import _suggest
    from ..sweep.slots import plan_slots
    from ..engine.command import command_line, train_args

    if spec.search is not None:
        raise EcasweepError(f"--cell: {spec.name} is a search study; its trials are not cells")
    cells = {c.key: c for c in spec.cells()}
    if key not in cells:
        raise EcasweepError(f"--cell: no cell {key!r} in {spec.name}{_suggest(key, list(cells))}; "
                            f"cells look like {next(iter(cells))!r} (see `ecasweep run {spec.name} --dry-run`)")
    slot = plan_slots(["auto"], 0)[0]
    args = train_args(spec.trial_config(cells[key], RuntimeConfig()), slot.device, slot.threads)
    sys.stdout.write(command_line(args) + "\n")
    err.print(f"# the same numbers as the cell when its worker ran on {slot.device} with {slot.threads} "
              "thread(s), as a default `run` here does; with --workers or on another machine, give that "
              "worker's --device and --threads", highlight=False, markup=False, soft_wrap=True)


@app.command()
def run(
    study: str = StudyArg,
    profile: str = ProfileOpt,
    set_: Optional[list[str]] = SetOpt,
    storage: Optional[str] = StorageOpt,
    name: Optional[str] = NameOpt,
    devices: str = typer.Option("auto", help="Comma-separated devices, one worker each: cpu,cpu or cuda:0,cuda:1."),
    workers: int = typer.Option(0, help="Worker processes on the one device given \\[default: one per core on "
                                        "the CPU, one per GPU]; CPU threads are split between them."),
    checkpoint_dir: Optional[str] = typer.Option(None, help="Per-trial checkpoints \\[default: .ecasweep/checkpoints/STUDY]."),
    dry_run: bool = typer.Option(False, "--dry-run", help="Show the cells, what is done, and the estimated cost."),
    no_table: bool = typer.Option(False, "--no-table", help="Do not print the table at the end."),
    until_resolved: bool = typer.Option(False, "--until-resolved", help="After the planned seeds, add seeds in rounds to the arms of open claims until every claim has a verdict (docs/claims.md)."),
    max_seeds: int = typer.Option(64, "--max-seeds", help="With --until-resolved: the most seeds an arm may reach; claims that need more are left open (futility)."),
    budget: Optional[str] = typer.Option(None, "--budget", help="With --until-resolved: wall time for the whole run, e.g. 45m or 2h; no round starts that is expected to overrun it."),
) -> None:
    """Run a study, or resume it: completed cells are kept, failed and interrupted ones run again.

    Examples:
      [bold]ecasweep run kernel-size[/]
      [bold]ecasweep run kernel-size --profile cifar --devices cuda:0,cuda:1 --storage postgresql://me@db/sweeps[/]
      [bold]ecasweep run reduction --set data.dataset=synthetic --set train.epochs=1 --set seeds=1[/]
      [bold]ecasweep run methods[/]   (Table 3: ECA against SE, CBAM, GE-θ⁻, GC; needs pip install 'ecasweep\\[timm]')

    Attention from timm: cbam, lcbam, ge-theta-minus, ge-theta, ge-theta-plus, gc, gca, ese, nl.
    Not offered: timm's sk, splat, lambda, halo, bottleneck (they replace the block's convolution
    instead of re-weighting its output after the block's last BatchNorm).
    """
    with _user_errors():
        from ..sweep import runner
        from ..launch.shared import mark_local_workers

        _quiet_libraries()
        mark_local_workers()  # the workers it starts share this host (and may share SQLite)
        if name is not None and not name.strip():
            raise EcasweepError("--name: expected a study name, got an empty one")
        options = dict(profile=profile, overrides=set_ or [], storage_url=storage, name=name,
                       devices=devices.split(","), workers=workers, checkpoint_dir=checkpoint_dir, console=console)
        resolution = None
        if until_resolved and not dry_run:
            from ..sweep.rounds import parse_duration, run_until_resolved

            resolution = run_until_resolved(study, max_seeds=max_seeds, budget_s=parse_duration(budget), **options)
            outcome = resolution.outcome
        else:
            outcome = runner.run(study, dry_run=dry_run, **options)
        if outcome is None:  # dry run
            return
        if not no_table:
            _print_table(outcome.study, outcome.spec_dict, outcome.records)
        if resolution is not None:
            console.print(resolution.summary, highlight=False)
        elif not no_table:
            from ..sweep.rounds import next_step

            where = [*(["--storage", storage] if storage else []), *(["--name", name] if name else [])]
            line = next_step(study, outcome, profile, set_ or [], devices.split(","), workers, options=where)
            if line:
                console.print(line, highlight=False, soft_wrap=True)
    if outcome.failed:
        err.print(f"[yellow]{outcome.failed} cell(s) failed[/]; see `ecasweep status {outcome.study.study_name}`; "
                  "run the same command again to retry them")
        raise typer.Exit(EXIT_FAILURES)


@app.command()
def worker(
    study: str = typer.Argument(..., help="Optuna study name to join."),
    storage: Optional[str] = StorageOpt,
    device: str = typer.Option("auto", help="This worker's device: cpu, cuda, cuda:N, mps, auto."),
    threads: Optional[int] = typer.Option(None, help="CPU threads for this worker \\[default: all cores]."),
    checkpoint_dir: Optional[str] = typer.Option(None, help="Per-trial checkpoints \\[default: .ecasweep/checkpoints/STUDY]."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress output."),
) -> None:
    """Join a running study as one more worker (any machine that reaches the storage).

    The recipe comes from the study in the storage, so every worker runs the same one.
    Example: [bold]ecasweep worker kernel-size --storage postgresql://me@db/sweeps --device cuda:0[/]
    """
    with _user_errors(quiet_interrupt=quiet):
        from ..sweep import runner
        from ..launch.shared import check_worker_storage
        from ..sweep.signals import watch_parent
        from ..store.storage import default_storage_url

        _quiet_libraries()
        watch_parent()  # started by `run`: stop when it is gone
        check_worker_storage(storage or default_storage_url())
        counts = runner.join(study, storage_url=storage, device=device, threads=threads,
                             checkpoint_dir=checkpoint_dir, console=None if quiet else console)
    if counts.get("FAIL"):
        raise typer.Exit(EXIT_FAILURES)


_SLURM = "SLURM (defaults: a \\[launcher.slurm] table in the study or profile file)"


@app.command()
def submit(
    study: str = StudyArg,
    profile: str = ProfileOpt,
    set_: Optional[list[str]] = SetOpt,
    storage: Optional[str] = StorageOpt,
    name: Optional[str] = NameOpt,
    jobs: Optional[int] = typer.Option(None, "--jobs", "-j", help="Worker jobs, one job array \\[default: 1]; "
                                       "never more than the cells left.", rich_help_panel=_SLURM),
    partition: Optional[str] = typer.Option(None, help="Partition.", rich_help_panel=_SLURM),
    time: Optional[str] = typer.Option(None, "--time", "-t", help="Time limit per job: minutes or \\[D-]HH:MM:SS; "
                                       "jobs requeue themselves at the limit \\[default: the partition's].",
                                       rich_help_panel=_SLURM),
    cpus_per_job: Optional[int] = typer.Option(None, help="CPUs per job (its trials' threads).", rich_help_panel=_SLURM),
    gpus_per_job: Optional[int] = typer.Option(None, help="GPUs per job (--gpus-per-node).", rich_help_panel=_SLURM),
    mem: Optional[str] = typer.Option(None, help="Memory per job, e.g. 16G.", rich_help_panel=_SLURM),
    account: Optional[str] = typer.Option(None, help="Account to charge.", rich_help_panel=_SLURM),
    qos: Optional[str] = typer.Option(None, help="Quality of service.", rich_help_panel=_SLURM),
    sbatch: Optional[list[str]] = typer.Option(None, help="Another #SBATCH option, e.g. --sbatch constraint=a100 "
                                               "(repeatable).", rich_help_panel=_SLURM),
    job_dir: Optional[str] = typer.Option(None, help="Shared directory for submitit's job files and logs (jobs/) "
                                          "and checkpoints \\[default: .ecasweep/slurm/STUDY].", rich_help_panel=_SLURM),
    checkpoint_dir: Optional[str] = typer.Option(None, help="Checkpoints, on a filesystem every node sees "
                                                 "\\[default: JOB_DIR/checkpoints].", rich_help_panel=_SLURM),
    shared_journal: bool = typer.Option(False, "--shared-journal", help="A journal:FILE storage is on a filesystem "
                                        "every node sees (else it is refused).", rich_help_panel=_SLURM),
) -> None:
    """Submit worker jobs to SLURM (through submitit): the study is created or resumed in the storage
    as `run` does, then each job works on its cells until none is left.

    Needs a storage every node reaches (PostgreSQL, MySQL) and pip install "ecasweep\\[slurm]".
    Examples:
      [bold]ecasweep submit kernel-size --profile cifar --jobs 8 --gpus-per-job 1 --time 8:00:00 --storage postgresql://me@db/sweeps[/]
      [bold]ecasweep status kernel-size --storage postgresql://me@db/sweeps[/]
    """
    with _user_errors():
        from ..launch import slurm

        _quiet_libraries()
        given = dict(jobs=jobs, partition=partition, time=time, cpus_per_job=cpus_per_job, gpus_per_job=gpus_per_job,
                     mem=mem, account=account, qos=qos, sbatch=tuple(sbatch or ()))
        done = slurm.submit(study, profile=profile, overrides=set_ or [], storage_url=storage, name=name,
                            options=given, job_dir=job_dir, checkpoint_dir=checkpoint_dir,
                            shared_journal=shared_journal)
    if done.warning:
        err.print(f"[yellow]warning:[/] {done.warning}", highlight=False, soft_wrap=True)
    if not done.jobs:
        console.print(f"every cell of {done.study} is done: nothing submitted", highlight=False)
        return
    console.print(f"submitted {len(done.jobs)} job(s) for {done.cells_left} cell(s) of {done.study}: "
                  f"{', '.join(done.jobs)}", highlight=False, soft_wrap=True)
    console.print(f"job files and logs: {done.job_dir / 'jobs'}\ncheckpoints: {done.checkpoint_dir}",
                  highlight=False, soft_wrap=True)
    console.print(f"watch: {done.watch}   (or: squeue -j {done.jobs[0].split('_')[0]})", highlight=False,
                  soft_wrap=True, markup=False)


@app.command()
def status(study: str = typer.Argument(..., help="Study name in the storage."),
           storage: Optional[str] = StorageOpt,
           as_json: bool = typer.Option(False, "--json", help="Print counts and cells as JSON.")) -> None:
    """Counts of cells by state (done, running, waiting, failed, todo), per cell, with failure reasons.

    Example: [bold]ecasweep status kernel-size[/]
    """
    from rich.markup import escape

    from ..sweep import runner

    _quiet_libraries()
    with _user_errors():
        from ..launch.jobs import study_jobs

        statuses = runner.status(study, storage)
        jobs = study_jobs(study, storage)
    counts: dict[str, int] = {}
    for s in statuses:
        counts[s.state] = counts.get(s.state, 0) + 1
    if as_json:
        _print_json({"counts": counts, "cells": [{"cell": s.cell.key, "state": s.state, "reason": s.reason,
                                                  "trial": s.record.number if s.record else None} for s in statuses],
                     "jobs": [dataclasses.asdict(j) for j in jobs]})
        return
    console.print(", ".join(f"{state}: {n}" for state, n in sorted(counts.items())) or "no trials yet")
    table = _table(f"cells of {study}")
    table.add_column("cell", no_wrap=True)  # ids are typed back (show --cell): never broken
    for column in ("state", "trial", "top-1", "reason"):
        table.add_column(column, overflow="fold")
    for s in statuses:
        top1 = s.record.metrics.get("top1") if s.record else None
        table.add_row(escape(s.cell.key), s.state, str(s.record.number) if s.record else "",
                      f"{top1:.2f}" if isinstance(top1, float) else "", escape(s.reason or ""))
    console.print(table)
    if jobs:
        _print_jobs(study, jobs)


def _print_jobs(study: str, jobs) -> None:
    from rich.markup import escape

    table = Table(title=f"SLURM jobs of {study}")
    for column in ("job", "state", "node", "trials done", "running", "log"):
        table.add_column(column, overflow="fold")
    for j in jobs:
        table.add_row(j.job, j.state, escape(j.node), str(j.done), escape(j.running or ""), escape(j.log or ""))
    console.print(table)


# ------------------------------------------------------------------------------------ reports

def _print_table(study, spec_dict, records, fmt: str = "rich", output: Path | None = None, **options) -> None:
    from ..report import build_claims, build_table, render, render_with_claims

    claims_only = options.pop("claims_only", False)
    table = build_table(spec_dict, records, **options)
    rendered = render_with_claims(render(table, fmt), build_claims(spec_dict, records), fmt, claims_only)
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
    metric: str = typer.Option("top1", help="top1, top5 or loss."),
    baseline: Optional[str] = typer.Option(None, help="Arm id to compare against \\[default: the study's]."),
    layout: Optional[str] = typer.Option(None, help="table2, figure4, gamma-beta, search or table3 \\[default: the study's]."),
    test: str = typer.Option("t", help="Paired test: t (paired t-test) or wilcoxon."),
    bootstrap: bool = typer.Option(False, "--bootstrap", help="Bootstrap confidence intervals."),
    claims_only: bool = typer.Option(False, "--claims", help="Only the Claims table (the study's claims and their verdicts)."),
) -> None:
    """The study's table: mean ± std over seeds, 95% CI, Δ vs baseline with Holm-adjusted p, ties with best.

    Example: [bold]ecasweep table kernel-size --format latex --output table.tex[/]
    """
    from ..sweep import runner

    _quiet_libraries()
    with _user_errors():
        fmt = _output_format(fmt, output)
        _check_choice("--metric", metric, ("top1", "top5", "loss"))
        _check_choice("--test", test, ("t", "wilcoxon"))
        if layout is not None:
            _check_choice("--layout", layout, ("table2", "figure4", "gamma-beta", "search", "table3"))
        loaded, spec_dict, records = runner.results(study, storage)
        if baseline is not None and baseline not in {a["id"] for a in spec_dict.get("arms", [])}:
            raise EcasweepError(f"--baseline: no arm {baseline!r}; arms: {', '.join(a['id'] for a in spec_dict['arms'])}")
        _print_table(loaded, spec_dict, records, fmt, output, metric=metric, baseline=baseline, test=test,
                     bootstrap=bootstrap, layout=layout, claims_only=claims_only)


#: the text format of an --output file, from its extension
FORMAT_BY_SUFFIX = {".md": "markdown", ".markdown": "markdown", ".csv": "csv", ".json": "json", ".tex": "latex"}


def _output_format(fmt: str | None, output: Path | None) -> str:
    """The format to render: --format, else the --output file's extension; an unusable output is refused
    before anything is read or written."""
    if fmt is not None:
        _check_choice("--format", fmt, ("rich", "markdown", "csv", "json", "latex"))
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


def main() -> None:
    """Console entry point."""
    app()


# ------------------------------------------------------------------------------------------ bench

bench_app = typer.Typer(no_args_is_help=False, help="Benchmarks: attention modules, models (Table 3), "
                        "the trial engine, sweeps. With no sub-command, all four.")
app.add_typer(bench_app, name="bench")
BenchQuickOpt = typer.Option(False, "--quick", help="Tiny sizes: everything runs in seconds; the numbers mean little.")
BenchDeviceOpt = typer.Option("auto", "--device", help="cpu, cuda, cuda:N, mps or auto.")
BenchJsonOpt = typer.Option(False, "--json", help="Print the results as one JSON object.")


def _bench(names: tuple[str, ...], quick: bool, device: str, as_json: bool) -> None:
    from ..bench import ratios, render, run_all

    _quiet_libraries()
    with _user_errors():
        results = _model_errors(lambda: run_all(quick=quick, device=device, which=names))
    if as_json:
        _print_json({**results, "ratios": ratios(results)})
        return
    render(results, console)
    for name, value in ratios(results).items():
        console.print(f"{name}: [bold]{value:.3f}[/]")


@bench_app.callback(invoke_without_command=True)
def bench_all(ctx: typer.Context, quick: bool = BenchQuickOpt, device: str = BenchDeviceOpt,
              as_json: bool = BenchJsonOpt) -> None:
    """Run all four benchmarks (under 5 minutes on a 2-core CPU).

    Example: [bold]ecasweep bench --json > bench.json[/]
    """
    if ctx.invoked_subcommand is None:
        from ..bench import BENCHMARKS

        _bench(BENCHMARKS, quick, device, as_json)


@bench_app.command("modules")
def bench_modules(quick: bool = BenchQuickOpt, device: str = BenchDeviceOpt, as_json: bool = BenchJsonOpt) -> None:
    """fwd+bwd time of every attention variant, and eca against the paper's eca_layer (ratio ref / ours).

    Example: [bold]ecasweep bench modules[/]
    """
    _bench(("modules",), quick, device, as_json)


@bench_app.command("models")
def bench_models(quick: bool = BenchQuickOpt, device: str = BenchDeviceOpt, as_json: bool = BenchJsonOpt) -> None:
    """The paper's Table 3 here: params, FLOPs, train/infer images/s, overhead vs none, the paper's beside.

    Example: [bold]ecasweep bench models --device cuda[/]
    """
    _bench(("models",), quick, device, as_json)


@bench_app.command("engine")
def bench_engine(quick: bool = BenchQuickOpt, device: str = BenchDeviceOpt, as_json: bool = BenchJsonOpt) -> None:
    """Images/s of the trial engine against a plain torchvision pipeline, and both accuracies.

    Example: [bold]ecasweep bench engine[/]
    """
    _bench(("engine",), quick, device, as_json)


@bench_app.command("sweep")
def bench_sweep(quick: bool = BenchQuickOpt, device: str = BenchDeviceOpt, as_json: bool = BenchJsonOpt) -> None:
    """A small grid study with 1 worker and with N: trials per hour, time outside training per trial.

    Example: [bold]ecasweep bench sweep[/]
    """
    _bench(("sweep",), quick, device, as_json)
