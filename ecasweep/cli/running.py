"""``ecasweep run``, ``worker``, ``submit`` and ``status``: running a study here, on other machines, on SLURM."""

from __future__ import annotations

import dataclasses
from typing import Optional

import typer
from rich.table import Table

from ..errors import EcasweepError

from .common import (app, console, err, EXIT_FAILURES, StudyArg, ProfileOpt, SetOpt, StorageOpt, NameOpt, _user_errors, _quiet_libraries, _print_json, _table)


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
    max_seeds: Optional[int] = typer.Option(None, "--max-seeds", help="With --until-resolved: the most seeds an arm may reach, 2 to 64; claims that need more are left open (futility) \\[default: 64]."),
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
        from ..sweep.rounds import check_max_seeds, parse_duration

        # Options are checked as they are parsed: the same answer with --dry-run or without.
        for option, value in (("--max-seeds", max_seeds), ("--budget", budget)):
            if value is not None and not until_resolved:
                raise EcasweepError(f"{option} has an effect only with --until-resolved; add --until-resolved, "
                                    f"or leave {option} out")
        seeds = {} if max_seeds is None else {"max_seeds": check_max_seeds(max_seeds)}
        budget_s = parse_duration(budget)
        _quiet_libraries()
        mark_local_workers()  # the workers it starts share this host (and may share SQLite)
        if name is not None and not name.strip():
            raise EcasweepError("--name: expected a study name, got an empty one")
        options = dict(profile=profile, overrides=set_ or [], storage_url=storage, name=name,
                       devices=devices.split(","), workers=workers, checkpoint_dir=checkpoint_dir, console=console,
                       until_resolved=until_resolved)
        resolution = None
        if until_resolved and not dry_run:
            from ..sweep.rounds import run_until_resolved

            resolution = run_until_resolved(study, budget_s=budget_s, **seeds, **options)
            outcome = resolution.outcome
        else:
            outcome = runner.run(study, dry_run=dry_run, **options)
        if outcome is None:  # dry run
            return
        from ..sweep.reuse import provenance

        line = provenance(outcome.records)
        if line:
            console.print(line, highlight=False, soft_wrap=True)
        if not no_table:
            from .reports import _print_table

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
    time: Optional[str] = typer.Option(None, "--time", "-t", help="Time limit per job, as SLURM reads it: MM, "
                                       "MM:SS, HH:MM:SS, D-HH, D-HH:MM or D-HH:MM:SS (so 8:00 is eight minutes, "
                                       "8:00:00 eight hours); jobs requeue themselves at the limit "
                                       "\\[default: the partition's].", rich_help_panel=_SLURM),
    cpus_per_job: Optional[int] = typer.Option(None, help="CPUs per job (its trials' threads).", rich_help_panel=_SLURM),
    gpus_per_job: Optional[int] = typer.Option(None, help="GPUs per job (--gpus-per-node).", rich_help_panel=_SLURM),
    mem: Optional[str] = typer.Option(None, help="Memory per job, e.g. 16G.", rich_help_panel=_SLURM),
    account: Optional[str] = typer.Option(None, help="Account to charge.", rich_help_panel=_SLURM),
    qos: Optional[str] = typer.Option(None, help="Quality of service.", rich_help_panel=_SLURM),
    sbatch: Optional[list[str]] = typer.Option(None, help="Another #SBATCH option by its long name, e.g. --sbatch "
                                               "constraint=a100 (repeatable); not one that submit sets itself "
                                               "(job-name, output, error, array, signal, export, ...) or has an "
                                               "option for.", rich_help_panel=_SLURM),
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
