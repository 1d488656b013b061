"""What a careless user met on the newer surfaces (issue 24): each kind of fault is answered the way the
README promises, on every path that meets it: one line naming the thing and what was expected, exit
code 2, no traceback, and nothing written.

1. values the storage cannot hold (a study name of hundreds of characters), checked before anything
   is written, dry run included, on SQLite and PostgreSQL alike;
2. options checked as they are parsed (--budget, --max-seeds, $ECASWEEP_HEARTBEAT), and options that
   do nothing without another one said so;
3. no silent fallback for $ECASWEEP_DATA and $ECASWEEP_STUDIES;
4. reading commands that write nothing: no Optuna tables in an empty database, no SQLite file, no
   lock file;
5. submit: --sbatch options ecasweep sets itself refused, a refused --sbatch value named, --time
   read as SLURM reads it with its fields in range;
6. dashboard on a busy port, table --claims with options of the other table, --until-resolved with
   no claims.
"""

from __future__ import annotations

import fcntl
import socket
import threading
import time
import uuid
from pathlib import Path

import optuna
import pytest
from typer.testing import CliRunner

from ecasweep.cli.app import app
from ecasweep.engine import data as D
from ecasweep.errors import SpecError, StorageError
from ecasweep.launch.slurm import SlurmOptions

from test_hardening import STUDY, nothing_written, refused, study, work  # noqa: F401  (work: fixture)

runner = CliRunner()

#: the tiny study of test_hardening with a claim, so that --until-resolved and --claims have work
CLAIMED = STUDY + """
[[claims]]
kind = "superiority"
a = "eca(k=3)"
b = "none"
"""
LONG = "x" * 600


def _pg_names(url: str) -> list[str]:
    return optuna.get_all_study_names(url)


@pytest.fixture(scope="module")
def stored(tmp_path_factory) -> tuple[Path, str]:
    """A finished tiny study with a claim in a SQLite file, its lock file removed (as after a copy of
    the database elsewhere); the tests only read it."""
    folder = tmp_path_factory.mktemp("stored")
    path = study(folder, CLAIMED)
    db = folder / "s.db"
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("ECASWEEP_CHECKPOINTS", str(folder / "checkpoints"))
        mp.setenv("ECASWEEP_HEARTBEAT", "1")
        result = runner.invoke(app, ["run", path, "--storage", f"sqlite:///{db}", "--workers", "1", "--no-table"])
    assert result.exit_code == 0, result.output
    db.with_name(db.name + ".ecasweep-lock").unlink()
    return db, path


def _files(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in folder.rglob("*") if p.is_file()}


# --- 1. what the storage can hold ------------------------------------------------------------------

@pytest.mark.parametrize("dry_run", [True, False])
def test_a_study_name_longer_than_the_storage_holds_is_one_line_before_anything_is_written_sqlite(work, dry_run):
    refused(["run", study(work), "--name", LONG, *(["--dry-run"] if dry_run else [])], "--name", "512", "600")
    named = study(work, STUDY.replace('name = "tiny"', f'name = "{LONG}"'))  # the study's own name
    refused(["run", named, *(["--dry-run"] if dry_run else [])], "study.toml: name", "512", "--name")
    nothing_written(work)


def test_a_study_name_longer_than_the_storage_holds_on_postgresql(work, postgres_url, unique_name):
    name = unique_name + LONG
    for args in (["run", study(work), "--name", name, "--storage", postgres_url, "--workers", "1"],
                 ["run", study(work), "--name", name, "--storage", postgres_url, "--dry-run"],
                 ["submit", study(work), "--name", name, "--storage", postgres_url, "--job-dir", str(work / "s")],
                 ["status", name, "--storage", postgres_url], ["table", name, "--storage", postgres_url],
                 ["worker", name, "--storage", postgres_url]):
        refused(args, "512")
    assert not [n for n in _pg_names(postgres_url) if n.startswith(unique_name)]
    nothing_written(work)
    assert not (work / "s").exists()


def test_the_longest_name_the_storage_holds_is_accepted_on_postgresql(work, postgres_url, unique_name):
    from ecasweep.spec import load_study
    from ecasweep.store.storage import open_storage
    from ecasweep.sweep.study import open_study

    name = (unique_name + "-" + "y" * 512)[:512]
    ok = runner.invoke(app, ["run", study(work), "--name", name, "--storage", postgres_url, "--dry-run",
                             "--checkpoint-dir", str(work / "ck")])
    assert ok.exit_code == 0, ok.output
    created = open_study(load_study(study(work)), open_storage(postgres_url), name, postgres_url)
    try:
        assert created.study_name == name
    finally:
        optuna.delete_study(study_name=name, storage=postgres_url)
    refused(["run", study(work), "--name", name + "z", "--storage", postgres_url, "--dry-run"], "512", "513")


def test_names_no_storage_can_hold_and_names_no_folder_can_hold(work):
    nul = study(work, STUDY.replace('name = "tiny"', 'name = "a\\u0000b"'))
    refused(["run", nul, "--dry-run"], "NUL")
    refused(["status", "a\udcffb"], "UTF-8")  # an argument in another encoding, as Python decodes it
    # 300 characters fit the storage but not a folder name: the default checkpoint folder is refused,
    # before anything trains (each trial failed with 'File name too long', exit 1)
    name = "z" * 300
    refused(["run", study(work), "--name", name, "--dry-run"], "checkpoint folder", "--checkpoint-dir")
    refused(["run", study(work), "--name", name, "--workers", "1"], "checkpoint folder")
    nothing_written(work)
    ok = runner.invoke(app, ["run", study(work), "--name", name, "--dry-run", "--checkpoint-dir", str(work / "ck")])
    assert ok.exit_code == 0, ok.output
    refused(["run", study(work), "--dry-run", "--checkpoint-dir", str(work / "study.toml" / "x")], "is a file")


def test_attributes_and_parameters_are_checked_against_optunas_columns():
    from optuna.storages._rdb.models import MAX_INDEXED_STRING_LENGTH

    from ecasweep.store.storage import MAX_KEY_LENGTH, check_storable, check_study_name

    assert MAX_KEY_LENGTH == MAX_INDEXED_STRING_LENGTH == 512
    check_study_name("x" * 512)
    check_storable({"k" * 512: "v" * 60000}, "test")
    with pytest.raises(StorageError, match="longer than the 512"):
        check_storable({"k" * 513: 1}, "test")
    with pytest.raises(StorageError, match="65,535"):
        check_storable({"k": "v" * 70000}, "test")


# --- 2. options checked as they are parsed -----------------------------------------------------------

@pytest.mark.parametrize("dry_run", [True, False])
@pytest.mark.parametrize("option", [["--budget", "abc"], ["--budget", "5m"], ["--max-seeds", "-1"],
                                    ["--max-seeds", "8"]])
def test_until_resolved_options_without_until_resolved_are_refused(work, option, dry_run):
    refused(["run", study(work, CLAIMED), *option, *(["--dry-run"] if dry_run else [])],
            f"{option[0]} has an effect only with --until-resolved")
    nothing_written(work)


@pytest.mark.parametrize("dry_run", [True, False])
@pytest.mark.parametrize("option, needle", [(["--budget", "abc"], "--budget: expected a duration"),
                                            (["--budget", "0m"], "--budget: expected a duration > 0"),
                                            (["--max-seeds", "-1"], "--max-seeds: expected an integer from 2 to 64"),
                                            (["--max-seeds", "1000"], "got 1000")])
def test_until_resolved_options_get_the_same_answer_with_or_without_dry_run(work, option, needle, dry_run):
    refused(["run", study(work, CLAIMED), "--until-resolved", *option, *(["--dry-run"] if dry_run else [])], needle)
    nothing_written(work)


@pytest.mark.parametrize("value", ["abc", "0", "-5", "1.5", "99999999999"])
def test_a_bad_heartbeat_is_refused_on_every_path(work, monkeypatch, value):
    monkeypatch.setenv("ECASWEEP_HEARTBEAT", value)
    refused(["run", study(work), "--dry-run"], "ECASWEEP_HEARTBEAT", repr(value))
    refused(["run", study(work), "--workers", "1"], "ECASWEEP_HEARTBEAT")
    (work / "j.log").write_text("")
    refused(["status", "tiny", "--storage", f"journal:{work / 'j.log'}"], "ECASWEEP_HEARTBEAT")
    (work / "j.log").unlink()
    nothing_written(work)


# --- 3. no silent fallback --------------------------------------------------------------------------

@pytest.fixture
def installed_copy(work, monkeypatch) -> Path:
    """A Fashion-MNIST and a CIFAR-10 where ecasweep would fall back to (only their names: the error
    comes before they are read)."""
    debian = work / "debian"
    debian.mkdir()
    for name in D.FASHION_MNIST_FILES:
        (debian / f"{name}.gz").write_bytes(b"")
    monkeypatch.setattr(D, "DEBIAN_FASHION_MNIST", str(debian))
    monkeypatch.setenv("XDG_CACHE_HOME", str(work / "cache"))
    (D.cache_dir() / "cifar-10-batches-py").mkdir(parents=True)
    return debian


@pytest.mark.parametrize("kind", ["missing", "file"])
@pytest.mark.parametrize("dataset", ["fashion-mnist", "cifar10"])
def test_ecasweep_data_naming_no_directory_is_refused_not_a_fallback(work, installed_copy, monkeypatch, kind, dataset):
    target = work / "typo"
    if kind == "file":
        target.write_text("not a directory")
    monkeypatch.setenv("ECASWEEP_DATA", str(target))
    text = STUDY.replace('dataset = "synthetic"', f'dataset = "{dataset}"')
    state = "does not exist" if kind == "missing" else "is a file"
    line = refused(["run", study(work, text), "--dry-run"], f"ECASWEEP_DATA={target} {state}", "unset it")
    assert ("debian" if dataset == "fashion-mnist" else "cifar-10-batches-py") in line
    refused(["train", "--backbone", "resnet-8", "--device", "cpu", "--dataset", dataset], "ECASWEEP_DATA")
    nothing_written(work)


def test_ecasweep_data_holding_another_dataset_is_a_search_path(work, installed_copy, monkeypatch):
    from ecasweep.engine.config import DataConfig

    (work / "data").mkdir()  # a folder of other datasets: searched, then the installed copy
    monkeypatch.setenv("ECASWEEP_DATA", str(work / "data"))
    with pytest.raises(Exception) as info:  # the empty stand-in files are read: not a fallback refusal
        D.load_dataset(DataConfig("fashion-mnist"), seed=0)
    assert "ECASWEEP_DATA" not in str(info.value) and "debian" in str(info.value)


@pytest.mark.parametrize("kind", ["missing", "file"])
def test_ecasweep_studies_naming_no_folder_is_refused(work, monkeypatch, kind):
    target = work / "studies"
    if kind == "file":
        target.write_text("name = 'x'\n")
    monkeypatch.setenv("ECASWEEP_STUDIES", f"{work / 'ok'}:{target}")
    (work / "ok").mkdir()
    state = "does not exist" if kind == "missing" else "is a file"
    for args in (["list"], ["show", "kernel-size"], ["run", "kernel-size", "--dry-run"]):
        refused(args, f"ECASWEEP_STUDIES: {target} {state}")
    nothing_written(work)
    monkeypatch.setenv("ECASWEEP_STUDIES", f"{work / 'ok'}::")  # empty entries are no folders: skipped
    assert runner.invoke(app, ["show", "kernel-size"]).exit_code == 0


# --- 4. reading writes nothing ---------------------------------------------------------------------

def test_reading_a_sqlite_study_leaves_no_file_and_changes_no_byte(stored, monkeypatch, tmp_path):
    db, path = stored
    folder = db.parent
    monkeypatch.chdir(folder)
    before = _files(folder)
    url = f"sqlite:///{db}"
    for args in (["status", "tiny"], ["status", "tiny", "--json"], ["table", "tiny"], ["table", "tiny", "--claims"],
                 ["compare", "tiny", "eca(k=3)", "none"], ["plot", "tiny", "-o", str(tmp_path / "p.png")],
                 ["run", path, "--dry-run"],
                 ["run", path, "--dry-run", "--set", "seeds=3"], ["show", path, "--cell", "resnet-8/none/seed=0"]):
        result = runner.invoke(app, [*args, "--storage", url] if args[0] != "show" else args)
        assert result.exit_code == 0, (args, result.output)
    assert _files(folder) == before  # no lock file, no journal, and the database as it was


def test_reading_a_missing_sqlite_database_names_the_study_and_creates_nothing(work):
    db = work / "none.db"
    for args in (["status", "tiny"], ["table", "tiny"], ["compare", "tiny", "a", "b"],
                 ["plot", "tiny", "-o", str(work / "p.png")], ["dashboard", "tiny"], ["worker", "tiny"]):
        refused([*args, "--storage", f"sqlite:///{db}"], "no study named 'tiny'", "no database at")
    assert sorted(p.name for p in work.iterdir()) == []


def test_reading_an_empty_postgresql_database_creates_no_table(work, postgres_url):
    import psycopg
    import sqlalchemy

    database = f"ecasweep_empty_{uuid.uuid4().hex[:10]}"
    server = sqlalchemy.make_url(postgres_url)
    admin = dict(host=server.host, port=server.port or 5432, user=server.username, dbname=server.database,
                 password=server.password, autocommit=True)
    with psycopg.connect(**admin) as conn:
        conn.execute(f'CREATE DATABASE "{database}"')
    url = server.set(database=database).render_as_string(hide_password=False)
    try:
        for args in (["status", "tiny"], ["table", "tiny"], ["table", "tiny", "--claims"],
                     ["compare", "tiny", "a", "b"], ["plot", "tiny", "-o", str(work / "p.png")],
                     ["dashboard", "tiny"], ["worker", "tiny"]):
            refused([*args, "--storage", url], "no study named 'tiny'", "no Optuna tables")
        dry = runner.invoke(app, ["run", study(work), "--storage", url, "--dry-run"])
        assert dry.exit_code == 0 and "(not started)" in dry.output, dry.output
        with psycopg.connect(**{**admin, "dbname": database}) as conn:
            tables = conn.execute("SELECT table_name FROM information_schema.tables "
                                  "WHERE table_schema NOT IN ('pg_catalog', 'information_schema')").fetchall()
        assert tables == []
    finally:
        with psycopg.connect(**admin) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')
    nothing_written(work)


def test_a_reader_takes_the_writers_lock_without_creating_it(tmp_path):
    from ecasweep.store.locking import lock_file, read_locked, study_lock
    from ecasweep.store.storage import open_storage

    url = f"sqlite:///{tmp_path / 'l.db'}"
    study_ = optuna.create_study(study_name="s", storage=open_storage(url))
    lock = lock_file(tmp_path / "l.db")
    assert read_locked(study_, lambda: 42) == 42 and not lock.exists()
    calls = []

    def writer_appears() -> int:  # a writer creates the lock file while the reader reads
        calls.append(lock.exists())
        lock.touch()
        return len(calls)

    assert read_locked(study_, writer_appears) == 2 and calls == [False, True]  # read again, under the lock
    with study_lock(study_):  # a writer holds it: the reader waits for it
        done = []
        reader = threading.Thread(target=lambda: done.append(read_locked(study_, lambda: "read")))
        reader.start()
        time.sleep(0.3)
        assert done == []
    reader.join(5)
    assert done == ["read"]
    with open(lock) as held:  # readers share it
        fcntl.flock(held, fcntl.LOCK_SH)
        assert read_locked(study_, lambda: "shared") == "shared"


# --- 5. submit ------------------------------------------------------------------------------------

SUBMIT = ["--storage", "postgresql://u@db.invalid/x"]  # never reached: the options are refused first


@pytest.mark.parametrize("value, needle", [
    ("wrap=true", "--wrap"), ("output=/tmp/x.out", "--output"), ("error=/tmp/x.err", "--error"),
    ("array=0-99", "--array"), ("job-name=mine", "--job-name"), ("job_name=mine", "--job-name"),
    ("signal=B:USR1@60", "--signal"), ("export=NONE", "--export"), ("--export=ALL,X=1", "--export"),
    ("open-mode=truncate", "--open-mode"), ("out=/tmp/x", "may be read by sbatch as --output"),
    ("partition=gpu", "ecasweep submit --partition"), ("time=10", "ecasweep submit --time"),
    ("J=mine", "job-name=... for -J"), ("-o x", "output=... for -o"), ("wait", "--wait"),
])
def test_sbatch_options_that_ecasweep_sets_itself_are_refused(work, value, needle):
    line = refused(["submit", study(work), *SUBMIT, "--sbatch", "comment=fine", "--sbatch", value,
                    "--job-dir", str(work / "s")], f"--sbatch {value}", needle)
    assert "comment" not in line  # the value refused, not another
    assert not (work / "s").exists()
    nothing_written(work)
    table = study(work, STUDY + f'[launcher.slurm]\nsbatch = ["{value}"]\n', name="launcher.toml")
    refused(["submit", table, *SUBMIT], f"--sbatch {value}")


def test_sbatch_options_of_its_own_pass():
    options = SlurmOptions(sbatch=("constraint=a100", "#SBATCH --exclusive", "gpus=2", "mail-type=END"))
    assert options.executor_parameters("x")["additional_parameters"] == \
        {"constraint": "a100", "exclusive": True, "gpus": "2", "mail-type": "END"}


@pytest.mark.parametrize("value, needle", [("foo=bar", "unrecognized option '--foo=bar'"),
                                           ("exclusive=maybe", "Invalid --exclusive specification")])
def test_an_sbatch_value_slurm_refuses_is_named(work, slurm_cluster, postgres_url, unique_name, value, needle):
    line = refused(["submit", study(work), "--storage", postgres_url, "--name", unique_name, "--partition",
                    slurm_cluster, "--sbatch", "comment=fine", "--sbatch", value, "--job-dir", str(work / "s")],
                   f"--sbatch {value}: SLURM refuses it", needle)
    assert "Try" not in line and "comment" not in line
    assert unique_name not in _pg_names(postgres_url) and not (work / "s").exists()


def test_a_partition_slurm_refuses_writes_no_job_folder(work, slurm_cluster, postgres_url, unique_name):
    refused(["submit", study(work), "--storage", postgres_url, "--name", unique_name, "--partition", "no-such",
             "--job-dir", str(work / "s")], "SLURM refuses these jobs", "partition")
    assert unique_name not in _pg_names(postgres_url) and not (work / "s").exists()


def test_time_is_read_as_slurm_reads_it():
    minutes = {t: SlurmOptions(time=t).minutes() for t in ("90", "8:00", "8:30", "8:00:00", "48:00:00", "1-0",
                                                           "1-12", "1-2:30", "1-02:30:01", "0:30")}
    assert minutes == {"90": 90, "8:00": 8, "8:30": 9, "8:00:00": 480, "48:00:00": 2880, "1-0": 1440,
                       "1-12": 2160, "1-2:30": 1590, "1-02:30:01": 1591, "0:30": 1}
    for bad, needle in (("1:75", "seconds 75"), ("1:00:75", "seconds 75"), ("2:60:00", "minutes 60"),
                        ("1-24", "hours 24"), ("1-23:60", "minutes 60"), ("2-", "expected one of SLURM's forms"),
                        ("0", "at least one minute"), ("8h", "expected one of SLURM's forms")):
        with pytest.raises(SpecError, match=needle):
            SlurmOptions(time=bad)


def test_time_errors_and_help_say_how_slurm_reads_it(work):
    refused(["submit", study(work), *SUBMIT, "--time", "1:75"], "--time 1:75", "seconds 75", "8:00 is eight minutes")
    result = runner.invoke(app, ["submit", "--help"], env={"COLUMNS": "200"})
    assert "8:00 is eight minutes" in " ".join(result.output.replace("│", " ").split())
    nothing_written(work)


def test_submit_refuses_an_empty_name(work):
    refused(["submit", study(work), *SUBMIT, "--name", ""], "--name", "empty")


# --- 6. the smaller ones ---------------------------------------------------------------------------

def test_dashboard_on_a_busy_port_says_so_before_announcing_anything(stored, monkeypatch):
    import optuna_dashboard

    served = []
    monkeypatch.setattr(optuna_dashboard, "run_server", lambda *a, **k: served.append(k))
    db, _ = stored
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        line = refused(["dashboard", "tiny", "--storage", f"sqlite:///{db}", "--port", str(port)],
                       f"cannot serve on 127.0.0.1:{port}", "--port")
    assert "http://" not in line and served == []
    ok = runner.invoke(app, ["dashboard", "tiny", "--storage", f"sqlite:///{db}", "--port", str(port)])
    assert ok.exit_code == 0 and f"http://127.0.0.1:{port}/dashboard/studies/" in ok.output and len(served) == 1


@pytest.mark.parametrize("option, needle", [
    (["--metric", "top5"], "--metric top5: the Claims table (--claims) is on top-1 only"),
    (["--metric", "loss"], "--metric loss"), (["--baseline", "none"], "--baseline has no effect with --claims"),
    (["--layout", "table2"], "--layout has no effect"), (["--test", "wilcoxon"], "--test has no effect"),
    (["--bootstrap"], "--bootstrap has no effect"),
])
def test_table_claims_with_an_option_of_the_other_table_is_refused(stored, option, needle):
    db, _ = stored
    refused(["table", "tiny", "--storage", f"sqlite:///{db}", "--claims", *option], needle)


def test_table_claims_on_top1_and_the_other_options_without_claims_still_work(stored):
    db, _ = stored
    url = f"sqlite:///{db}"
    claims = runner.invoke(app, ["table", "tiny", "--storage", url, "--claims", "--metric", "top1", "-f", "json"])
    assert claims.exit_code == 0 and '"metric": "top1"' in claims.output, claims.output
    table = runner.invoke(app, ["table", "tiny", "--storage", url, "--metric", "top5", "--test", "wilcoxon",
                                "--baseline", "none", "-f", "markdown"])
    assert table.exit_code == 0, table.output


@pytest.mark.parametrize("dry_run", [True, False])
def test_until_resolved_on_a_study_without_claims_is_refused_before_anything_trains(work, dry_run):
    refused(["run", study(work), "--until-resolved", *(["--dry-run"] if dry_run else [])],
            "--until-resolved", "no claims", "nothing to resolve")
    nothing_written(work)
    ok = runner.invoke(app, ["run", study(work, CLAIMED), "--until-resolved", "--dry-run"])
    assert ok.exit_code == 0, ok.output
