"""Worker jobs on SLURM, submitted through submitit (https://github.com/facebookincubator/submitit).

``submit`` creates or resumes the study in its storage as ``ecasweep run`` does, then submits N
worker jobs as one job array. Each job runs ``SlurmWorker``: the loop of ``ecasweep worker``
(``sweep.work``) on the job's device and CPUs, until no cell is left; a job that finds no work
exits 0 at once. Checkpoints go to a directory every job sees: by default ``checkpoints/`` beside
submitit's job folder ``jobs/``, under ``--job-dir`` (default ``.ecasweep/slurm/STUDY`` in the
submitting directory, which on a cluster is on the shared filesystem, as submitit requires).

Signals (SLURM's time limit, preemption, ``scancel``):

* SIGTERM (``scancel``, the time limit itself, preemption) stops the running trial at the next
  step, marks it ``interrupted`` and exits 143 (``ecasweep.signals``); another job of the study
  claims the cell again and resumes it from its last checkpoint.
* SIGUSR2, which submitit asks SLURM to send ``SIGNAL_DELAY_S`` seconds before the time limit
  (``--signal=USR2@90``), does the same, then requeues the job (``scontrol requeue``) while cells
  are left, at most ``MAX_REQUEUES`` times; the requeued job resumes the study.

Example:
    >>> options = SlurmOptions.merged({"partition": "gpu", "time": "4:00:00"}, gpus_per_job=1)
    >>> options.partition, options.minutes(), options.gpus_per_job
    ('gpu', 240, 1)
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator, Mapping, Sequence

from ..errors import EcasweepError, SpecError
from ..store.storage import PASSWORD_ENV, mask_url, normalize_url, with_password, without_password
from .shared import check_cluster_storage

log = logging.getLogger(__name__)

#: seconds before the time limit at which SLURM sends SIGUSR2 (submitit's ``signal_delay_s``)
SIGNAL_DELAY_S = 90
#: a job reaching its time limit requeues itself at most this often
MAX_REQUEUES = 10
_TIME = re.compile(r"^(?:(\d+)-)?(\d+)(?::(\d+))?(?::(\d+))?$", re.ASCII)
#: the forms of a time limit that SLURM reads (sbatch --time), as ``--time`` help and errors name them
TIME_FORMS = "MM, MM:SS, HH:MM:SS, D-HH, D-HH:MM, D-HH:MM:SS (8:00 is eight minutes, 8:00:00 eight hours)"
_MEM = re.compile(r"^\d+(?:\.\d+)?[KMGT]?B?$", re.IGNORECASE)


class TimeUp(KeyboardInterrupt):
    """SLURM warned that the job's time limit (or its preemption) is near (SIGUSR2)."""


@dataclass(frozen=True)
class SlurmOptions:
    """What SLURM users set for every job; ``None`` leaves the cluster's default."""

    jobs: int = 1
    partition: str | None = None
    time: str | None = None
    cpus_per_job: int | None = None
    gpus_per_job: int | None = None
    mem: str | None = None
    account: str | None = None
    qos: str | None = None
    sbatch: tuple[str, ...] = field(default_factory=tuple)

    def __post_init__(self) -> None:
        for name in ("jobs", "cpus_per_job"):
            value = getattr(self, name)
            if value is not None and (not isinstance(value, int) or isinstance(value, bool) or value < 1):
                raise SpecError(f"--{name.replace('_', '-')}: expected a whole number >= 1, got {value!r}")
        if self.gpus_per_job is not None and (not isinstance(self.gpus_per_job, int) or self.gpus_per_job < 0):
            raise SpecError(f"--gpus-per-job: expected a whole number >= 0, got {self.gpus_per_job!r}")
        if self.time is not None:
            self.minutes()
        if self.mem is not None and not _MEM.match(str(self.mem)):
            raise SpecError(f"--mem: expected a size like 16G or 4000M, got {self.mem!r}")
        _sbatch_parameters(self.sbatch)

    @classmethod
    def merged(cls, table: Mapping[str, Any] | None = None, **given: Any) -> "SlurmOptions":
        """Defaults from a ``[launcher.slurm]`` table, overridden by the options ``given`` (None = not given)."""
        names = {f.name for f in dataclasses.fields(cls)}
        table = dict(table or {})
        for key in table:
            if key not in names:
                raise SpecError(f"[launcher.slurm] {key}: unknown key; expected one of: {', '.join(sorted(names))}")
        values = {**table, **{k: v for k, v in given.items() if v is not None and v != ()}}
        if "time" in values and values["time"] is not None:
            values["time"] = str(values["time"])
        if isinstance(values.get("sbatch"), str):
            values["sbatch"] = (values["sbatch"],)
        values["sbatch"] = tuple(values.get("sbatch") or ())
        return cls(**values)

    def minutes(self) -> int | None:
        """The time limit in whole minutes, read as SLURM reads it (``TIME_FORMS``: 8:00 is eight
        minutes); a field out of its range (minutes or seconds of 60 or more after the first field,
        hours of 24 or more after days) is refused, where SLURM would quietly carry it over.

        >>> [SlurmOptions(time=t).minutes() for t in ("90", "8:00", "8:00:00", "1-12", "2-0:30:00")]
        [90, 8, 480, 2160, 2910]
        """
        if self.time is None:
            return None
        text = str(self.time).strip()
        match = _TIME.match(text)
        if not match:
            raise SpecError(f"--time: expected one of SLURM's forms {TIME_FORMS}, got {self.time!r}")
        days, a, b, c = match.groups()
        parts = [int(a)] + [int(x) for x in (b, c) if x is not None]
        if days is not None:  # D-HH, D-HH:MM, D-HH:MM:SS
            hours, minutes, seconds = (parts + [0, 0])[:3]
            limits = (("hours", hours, 24), ("minutes", minutes, 60), ("seconds", seconds, 60))
            total = int(days) * 1440 + hours * 60 + minutes + (seconds > 0)
        elif len(parts) == 1:  # MM
            limits, total = (), parts[0]
        elif len(parts) == 2:  # MM:SS
            limits, total = (("seconds", parts[1], 60),), parts[0] + (parts[1] > 0)
        else:  # HH:MM:SS
            limits = (("minutes", parts[1], 60), ("seconds", parts[2], 60))
            total = parts[0] * 60 + parts[1] + (parts[2] > 0)
        for field_name, value, limit in limits:
            if value >= limit:
                raise SpecError(f"--time {text}: {field_name} {value} is out of range (0 to {limit - 1}); "
                                f"SLURM's forms are {TIME_FORMS}")
        if total < 1:
            raise SpecError(f"--time: expected at least one minute, got {self.time!r}")
        return total

    def executor_parameters(self, job_name: str) -> dict[str, Any]:
        """Keyword arguments for ``submitit.SlurmExecutor.update_parameters``."""
        extra = _sbatch_parameters(self.sbatch)
        if self.mem is not None:
            extra["mem"] = str(self.mem).upper().removesuffix("B")
        params = {"job_name": job_name, "partition": self.partition, "cpus_per_task": self.cpus_per_job,
                  "gpus_per_node": self.gpus_per_job or None, "account": self.account, "qos": self.qos,
                  "signal_delay_s": SIGNAL_DELAY_S, "additional_parameters": extra}
        # time=None explicitly: submitit would otherwise write its own default, --time=5
        return {k: v for k, v in params.items() if v is not None} | {"time": self.minutes()}


#: sbatch options ecasweep (or submitit for it) sets on every job: another value would break the job
#: (its logs, its array, the SIGUSR2 before the time limit, the environment that carries the storage
#: password, submitit's reading of sbatch's answer), so ``--sbatch`` may not give them
_SBATCH_OWN = {
    "job-name": "the jobs are named after the study", "output": "submitit keeps the job logs there",
    "error": "submitit keeps the job logs there", "open-mode": "a requeued job appends to its logs",
    "array": "the jobs are one array, sized by --jobs", "wrap": "the job script is submitit's",
    "signal": "SIGUSR2 warns a job before its time limit, to requeue itself",
    "export": "the jobs need the submitting environment, where the storage password travels",
    "export-file": "the jobs need the submitting environment, where the storage password travels",
    "nodes": "each job is one worker on one node", "ntasks": "each job is one worker",
    "ntasks-per-node": "each job is one worker", "no-requeue": "jobs requeue themselves at the time limit",
    "parsable": "submitit reads sbatch's usual answer", "test-only": "submit tests the jobs itself",
    "wait": "submit returns once the jobs are queued",
}
#: sbatch options that ``ecasweep submit`` has options of its own for
_SBATCH_GIVEN = {"partition": "--partition", "time": "--time", "cpus-per-task": "--cpus-per-job",
                 "gpus-per-node": "--gpus-per-job", "mem": "--mem", "account": "--account", "qos": "--qos"}
#: sbatch's one-letter options, by their long names (the long name is what an #SBATCH line of submitit's takes)
_SBATCH_SHORT = {"J": "job-name", "o": "output", "e": "error", "a": "array", "N": "nodes", "n": "ntasks",
                 "W": "wait", "p": "partition", "t": "time", "c": "cpus-per-task", "A": "account", "q": "qos",
                 "C": "constraint", "D": "chdir", "G": "gpus", "H": "hold", "w": "nodelist", "x": "exclude",
                 "d": "dependency", "i": "input", "k": "no-kill", "s": "oversubscribe", "S": "core-spec"}
#: real sbatch options that are also the start of a refused one (sbatch takes any unambiguous start)
_SBATCH_PREFIXES_ALLOWED = {"gpus"}


def _sbatch_parameters(lines: Sequence[str]) -> dict[str, Any]:
    """Extra ``#SBATCH`` lines (``--constraint=a100``, ``#SBATCH --exclusive``) as submitit's additional parameters.

    An option ecasweep sets itself (``_SBATCH_OWN``) or has an option for (``_SBATCH_GIVEN``), by its
    name or the start of it (sbatch reads ``--out`` as ``--output``), is refused in one line saying
    why, and so is a one-letter option (an ``#SBATCH`` line of submitit's takes the long name).
    """
    params: dict[str, Any] = {}
    refused = {**_SBATCH_OWN, **_SBATCH_GIVEN}
    for line in lines:
        text = str(line).strip().removeprefix("#SBATCH").strip()
        match = re.fullmatch(r"(-{1,2})?([A-Za-z][\w-]*)(?:[= ](.+))?", text, re.ASCII | re.DOTALL)
        if not match or "\n" in text:
            raise SpecError(f"--sbatch: expected an sbatch option like --constraint=a100, got {line!r}")
        dashes, key, value = match.groups()
        if len(key) == 1 or dashes == "-":
            long = _SBATCH_SHORT.get(key[0]) if dashes == "-" or len(key) == 1 else None
            raise SpecError(f"--sbatch {line}: expected sbatch's long option name"
                            + (f" ({long}=... for -{key[0]})" if long else "") + ", e.g. --sbatch constraint=a100")
        name = key.replace("_", "-").lower()
        option = name if name in refused else None
        if option is None and name not in _SBATCH_PREFIXES_ALLOWED:
            option = next((o for o in refused if o.startswith(name)), None)
        if option is not None:
            read_as = f"sets --{option}" if option == name else f"may be read by sbatch as --{option}"
            if option in _SBATCH_GIVEN:
                raise SpecError(f"--sbatch {line}: {read_as}, which `ecasweep submit {_SBATCH_GIVEN[option]}` gives; "
                                f"use that option instead")
            raise SpecError(f"--sbatch {line}: {read_as}, which submit does not let you change: "
                            f"{_SBATCH_OWN[option]}; leave it out")
        params[key] = True if value is None else value.strip().strip("'\"")
    return params


@dataclass(frozen=True)
class Submission:
    """What ``submit`` did: the jobs, where their files and checkpoints are, how to watch them."""

    study: str
    jobs: list[str]
    job_dir: Path
    checkpoint_dir: Path
    cells_left: int
    watch: str
    warning: str | None = None


def default_job_dir(study_name: str) -> Path:
    from ..sweep.slots import _safe

    return Path(".ecasweep", "slurm", _safe(study_name)).absolute()


def submit(study_name: str, profile: str = "quick", overrides: Sequence[str] = (), storage_url: str | None = None,
           name: str | None = None, options: SlurmOptions | Mapping[str, Any] | None = None, job_dir: str | None = None,
           checkpoint_dir: str | None = None, shared_journal: bool = False) -> Submission:
    """Create or resume ``study_name`` in its storage, then submit worker jobs for its cells.

    ``options``: a ``SlurmOptions``, or the options given on the command line (None where not
    given), which override the study's ``[launcher.slurm]`` table.

    Everything a user can get wrong (the study, the options, a storage the cluster cannot share,
    no submitit, no SLURM) is refused before anything is written or submitted.
    """
    from ..engine.data import load_dataset
    from ..spec import load_study
    from ..store.storage import default_storage_url, heartbeat_interval, open_storage
    from ..sweep.cells import cell_statuses, ensure_cells
    from ..sweep.runner import check_before_writing, check_directory
    from ..sweep.study import open_study, stored_spec
    from .jobs import record_jobs

    spec = load_study(study_name, profile, overrides)
    check_before_writing(spec, name)  # a study name (or anything) the storage cannot hold, as `run` checks
    if not isinstance(options, SlurmOptions):
        options = SlurmOptions.merged(spec.launcher.get("slurm"), **dict(options or {}))
    url = _absolute_journal(storage_url or default_storage_url())
    heartbeat_interval()  # $ECASWEEP_HEARTBEAT, which the jobs' storage reads
    warning = check_cluster_storage(url, shared_journal=shared_journal)
    submitit = _submitit()
    if shutil.which("sbatch") is None or shutil.which("srun") is None:
        raise EcasweepError("no SLURM here: sbatch and srun are not on PATH (submit from a login node of the cluster)")
    root = Path(job_dir).absolute() if job_dir else default_job_dir(name or spec.name)
    check_directory(root / "jobs", "--job-dir" if job_dir else "the job folder", "--job-dir")
    if checkpoint_dir:
        check_directory(Path(checkpoint_dir).absolute(), "--checkpoint-dir")
    executor = submitit.SlurmExecutor(folder=root / "jobs")  # creates nothing until a job is submitted
    executor.update_parameters(**options.executor_parameters(f"ecasweep-{name or spec.name}"))
    _test_only(executor, options)
    load_dataset(spec.data, seed=0)  # a missing dataset or an impossible subset, as `run` checks

    _make_private(root)  # the first thing written, once everything that can be refused was checked
    study = open_study(spec, open_storage(url), name, url)
    stored = stored_spec(study)
    if stored.seeds > spec.seeds:  # fewer seeds than planned does not shrink a study
        spec = dataclasses.replace(spec, seeds=stored.seeds)
    ensure_cells(study, spec, retry_failed=True)
    left = _cells_left(study, spec, cell_statuses)
    ckpt = Path(checkpoint_dir).absolute() if checkpoint_dir else root / "checkpoints"
    watch = f"ecasweep status {shlex.quote(study.study_name)} --storage {shlex.quote(mask_url(url))}"
    if left == 0:
        return Submission(study.study_name, [], root, ckpt, 0, watch, warning)

    # submitit pickles the worker into the job folder: the URL goes there without its password, which
    # reaches the jobs through their environment (sbatch exports the submitting environment).
    public_url, password = without_password(url)
    worker = SlurmWorker(study.study_name, public_url, str(ckpt), shared_journal)
    try:
        with _private_umask(), _environment({PASSWORD_ENV: password}), executor.batch():
            submitted = [executor.submit(worker) for _ in range(min(options.jobs, left))]
    except Exception as exc:  # sbatch refused what --test-only accepted (a limit reached meanwhile)
        detail = str(exc).strip().splitlines()
        raise EcasweepError(f"sbatch refused the jobs: {detail[-1] if detail else type(exc).__name__}") from None
    jobs = [job.job_id for job in submitted]
    record_jobs(study, jobs, root / "jobs")
    return Submission(study.study_name, jobs, root, ckpt, left, watch, warning)


def _make_private(root: Path) -> None:
    """The job folder, readable by the user alone (0700): job scripts, logs and results live there,
    on a filesystem other users of the cluster can read."""
    root.mkdir(parents=True, exist_ok=True, mode=0o700)
    for folder in (root, root / "jobs"):
        if folder.is_dir():
            folder.chmod(0o700)


@contextlib.contextmanager
def _private_umask() -> Iterator[None]:
    """Files created meanwhile (submitit's scripts and pickles; through sbatch, which passes the umask
    on as SLURM_UMASK, the jobs' logs and checkpoints) are the user's alone."""
    previous = os.umask(0o077)
    try:
        yield
    finally:
        os.umask(previous)


@contextlib.contextmanager
def _environment(values: Mapping[str, str | None]) -> Iterator[None]:
    """``os.environ`` with ``values`` set (a None value: left as it is) while the block runs."""
    saved = {key: os.environ.get(key) for key in values}
    os.environ.update({key: value for key, value in values.items() if value is not None})
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def _test_only(executor, options: SlurmOptions | None = None) -> None:
    """``sbatch --test-only`` on the job script submitit would write (with a no-op command): a
    partition, account, QOS, GPU request, time limit or ``--sbatch`` option SLURM refuses is one
    line, before anything is written. A refused ``--sbatch`` option is named: each is tried alone."""
    refusal = _sbatch_test_only(executor)
    if refusal is None:
        return
    extra = dict(executor.parameters.get("additional_parameters") or {})
    given = list(options.sbatch) if options is not None else []
    if given:
        own = {k: v for k, v in extra.items() if k == "mem"}  # --mem travels as an additional parameter
        for line in given:
            alone = _sbatch_test_only(executor, {**own, **_sbatch_parameters([line])})
            if alone is not None:
                raise EcasweepError(f"--sbatch {line}: SLURM refuses it: {alone}")
    raise EcasweepError(f"SLURM refuses these jobs: {refusal}")


def _sbatch_test_only(executor, additional: Mapping[str, Any] | None = None) -> str | None:
    """What ``sbatch --test-only`` says against the job script (with ``additional`` in place of its
    additional parameters, when given), in one line; None when it accepts it."""
    saved = dict(executor.parameters)
    if additional is not None:
        executor.parameters["additional_parameters"] = dict(additional)
    try:
        text = executor._make_submission_file_text("true", "test-only")
    finally:
        executor.parameters.clear()
        executor.parameters.update(saved)
    with tempfile.NamedTemporaryFile("w", suffix=".sh", prefix="ecasweep-") as script:
        script.write(text)
        script.flush()
        result = subprocess.run(["sbatch", "--test-only", script.name], capture_output=True, text=True, timeout=60)
    if result.returncode == 0:
        return None
    # sbatch ends with 'Try "sbatch --help" for more information', which names nothing: the line before it does
    lines = [line.removeprefix("sbatch: error: ").removeprefix("sbatch: ").strip()
             for line in result.stderr.strip().splitlines() if not line.startswith("Try ")]
    lines = [line for line in lines if line]
    return lines[-1] if lines else f"sbatch --test-only failed (exit code {result.returncode})"


def _cells_left(study, spec, cell_statuses) -> int:
    if spec.search is not None:
        finished = [t for t in study.get_trials(deepcopy=False) if t.state.is_finished()]
        return max(0, spec.search.n_trials - len(finished))
    return sum(s.state != "done" for s in cell_statuses(study, spec))


def _absolute_journal(url: str) -> str:
    """Jobs may start in another directory: a journal file is named by its absolute path."""
    url = normalize_url(url)
    if url.startswith("journal:"):
        return f"journal:{Path(url[len('journal:'):].removeprefix('//')).absolute()}"
    return url


def _submitit():
    try:
        import submitit
    except ImportError:
        raise EcasweepError("submitting SLURM jobs needs submitit: pip install 'ecasweep[slurm]'") from None
    return submitit


# -------------------------------------------------------------------------------------- in the job

@dataclass(frozen=True)
class SlurmWorker:
    """The function each SLURM job runs: ``ecasweep worker`` for one study, on the job's resources.

    ``storage_url`` has no password (submitit writes this object to the shared job folder); the job
    finds it in ``$ECASWEEP_STORAGE_PASSWORD``, which ``submit`` exported to it.
    """

    study_name: str
    storage_url: str
    checkpoint_dir: str
    shared_journal: bool = False

    @property
    def url(self) -> str:
        return with_password(self.storage_url, os.environ.get(PASSWORD_ENV))

    def __call__(self) -> dict[str, int]:
        from ..sweep import signals

        logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s", force=True)
        signals.install()  # SIGTERM (scancel, time limit, preemption): stop like Ctrl-C
        signal.signal(signal.SIGUSR2, _time_up)
        try:
            counts = self._work()
        except TimeUp:
            self._requeue()
            sys.exit(signals.EXIT_TERMINATED)
        except KeyboardInterrupt as exc:
            log.warning("stopped by %s; the running trial was marked 'interrupted'",
                        "SIGTERM" if isinstance(exc, signals.Terminated) else "SIGINT")
            sys.exit(signals.exit_code(exc))
        except EcasweepError as exc:  # a user error: one line in the job's log, and the job fails
            log.error("%s", mask_url(str(exc)))
            raise SystemExit(2) from None
        log.info("no cell left for this job: %s", counts)
        return counts

    def _work(self) -> dict[str, int]:
        import optuna

        from ..engine.config import RuntimeConfig
        from ..store.storage import load_study as load_stored, open_storage
        from ..sweep.study import stored_spec
        from ..sweep.worker import work

        optuna.logging.set_verbosity(optuna.logging.WARNING)
        # Heartbeats and stale-trial handling are marked experimental; resuming relies on them.
        warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
        check_cluster_storage(self.url, shared_journal=self.shared_journal)
        study = load_stored(open_storage(self.url, create=False), self.study_name, self.url)
        spec = stored_spec(study)
        runtime = RuntimeConfig(device="auto", threads=job_cpus(), checkpoint_dir=self.checkpoint_dir)
        log.info("job %s on %s: study %s, %d CPU thread(s), checkpoints in %s", _job_id(), os.uname().nodename,
                 self.study_name, runtime.threads, self.checkpoint_dir)
        return work(study, spec, runtime, on_event=_log_event)

    def _requeue(self) -> None:
        restarts = int(os.environ.get("SLURM_RESTART_COUNT") or 0)
        if restarts >= MAX_REQUEUES:
            log.warning("time limit: not requeued (already requeued %d times); run `ecasweep submit` again", restarts)
            return
        if not self._cells_left():
            log.info("time limit: no cell left, not requeued")
            return
        job = _job_id()
        result = subprocess.run(["scontrol", "requeue", job], capture_output=True, text=True, timeout=60)
        if result.returncode == 0:
            log.warning("time limit: the running trial was marked 'interrupted' and job %s requeued", job)
        else:
            log.error("time limit: could not requeue job %s: %s", job, result.stderr.strip())

    def _cells_left(self) -> bool:
        from ..store.storage import load_study as load_stored, open_storage
        from ..sweep.cells import cell_statuses
        from ..sweep.study import stored_spec

        try:
            study = load_stored(open_storage(self.url, create=False), self.study_name, self.url)
            spec = stored_spec(study)
            if spec.search is not None:
                return True
            return any(s.state != "done" for s in cell_statuses(study, spec))
        except Exception as exc:  # the storage is unreachable: requeue, the next start will tell
            log.warning("could not read the study (%s); requeueing", mask_url(str(exc)))
            return True


def _time_up(signum: int, frame: object) -> None:
    from ..sweep import signals

    if signals.stopping() is not None:
        return  # already stopping
    # SIGTERM follows at the time limit: it must not cut short the bookkeeping and the requeue.
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    raise TimeUp()


def job_cpus() -> int | None:
    """The CPUs SLURM gave this job (``--cpus-per-task``, else those on the node), or None."""
    for name in ("SLURM_CPUS_PER_TASK", "SLURM_CPUS_ON_NODE"):
        raw = os.environ.get(name, "")
        if raw.isdigit() and int(raw) > 0:
            return int(raw)
    return None


def _job_id() -> str:
    array, task = os.environ.get("SLURM_ARRAY_JOB_ID"), os.environ.get("SLURM_ARRAY_TASK_ID")
    return f"{array}_{task}" if array and task else os.environ.get("SLURM_JOB_ID", "?")


def _log_event(kind: str, data: dict[str, Any]) -> None:
    if kind == "start":
        log.info("trial %d (%s): started, %d epoch(s)", data["number"], data["cell"], data["epochs"])
    elif kind == "epoch":
        log.info("trial %d: epoch %d, loss %.4f", data["number"], data["epoch"], data.get("train_loss", float("nan")))
    elif kind == "end":
        log.info("trial %d: %s %s", data["number"], data["state"], data.get("reason") or
                 (f"top-1 {data['top1']:.2f}" if "top1" in data else ""))
    elif kind == "waiting":
        log.info("waiting for %d cell(s) running elsewhere: %s", len(data["cells"]), "; ".join(data["cells"]))
