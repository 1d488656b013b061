"""``ecasweep report``: one report of studies already run, whose numbers are the tables' own."""

from __future__ import annotations

import json
import shlex
from html.parser import HTMLParser
from pathlib import Path

import pytest
from typer.testing import CliRunner

from ecasweep.cli.app import app

from conftest import write_study

runner = CliRunner()


def _study(tmp_path: Path, name: str, seeds: int = 2) -> Path:
    path = write_study(tmp_path, name=name, seeds=seeds, size=256, epochs=1, ks="[3]")
    path.write_text(path.read_text() + '\n[[claims]]\nkind = "superiority"\na = "eca(k=3)"\nb = "none"\n'
                    'words = "ECA beats no attention"\n\n[[claims]]\nkind = "non-inferiority"\na = "se(r=4)"\n'
                    'b = "eca(k=3)"\nmargin = 1.0\nwords = "SE is no worse than ECA"\n')
    return path


@pytest.fixture(scope="module")
def two_studies(tmp_path_factory) -> tuple[Path, str]:
    tmp = tmp_path_factory.mktemp("document")
    url = f"sqlite:///{tmp / 'studies.db'}"
    for name in ("alpha", "beta"):
        ran = runner.invoke(app, ["run", str(_study(tmp, name)), "--storage", url, "--devices", "cpu", "--no-table"])
        assert ran.exit_code == 0, ran.output
    return tmp, url


class _Text(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.text, self.tags, self.images = [], [], []

    def handle_starttag(self, tag, attrs):
        self.tags.append(tag)
        if tag == "img":
            self.images.append(dict(attrs)["src"])
        if tag in ("link", "script") or (tag == "img" and not dict(attrs)["src"].startswith("data:")):
            raise AssertionError(f"the report loads another file: <{tag} {attrs}>")

    def handle_data(self, data):
        self.text.append(data)


def test_the_report_holds_the_tables_and_claims_as_the_table_command_gives_them(two_studies, tmp_path):
    folder, url = two_studies
    out = tmp_path / "report"
    result = runner.invoke(app, ["report", "alpha", "beta", "--storage", url, "--output", str(out)])
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in out.iterdir()) == ["report.html", "report.json", "report.md"]
    report = json.loads((out / "report.json").read_text())
    assert report["schema"] == "ecasweep.report/1" and [s["name"] for s in report["studies"]] == ["alpha", "beta"]
    # the claims of both studies are one family: the report's error statement is for the whole report
    assert report["errors"]["one_family"] and report["errors"]["hypotheses"] == 4
    assert "any wrong verdict in this whole report stays below 0.05" in report["errors"]["statement"]
    for part in report["studies"]:
        family = ["--family", "alpha,beta"]
        table = runner.invoke(app, ["table", part["name"], "--storage", url, "--format", "json", *family])
        claims = runner.invoke(app, ["table", part["name"], "--storage", url, "--claims", "--format", "json", *family])
        whole = json.loads(table.output)  # the table with its claims; the report holds the claims once
        assert part["table"] == {k: v for k, v in whole.items() if k != "claims"}
        assert part["claims"] == whole["claims"] == json.loads(claims.output)
        assert part["claims"]["family"] == 4 and part["claims"]["studies"] == ["alpha", "beta"]
        # the command the report gives for its claims prints them
        given = shlex.split(part["commands"]["claims"])
        assert given[:2] == ["ecasweep", "table"] and given[-4:] == ["--family", "alpha,beta", "--storage", url]
        assert json.loads(runner.invoke(app, given[1:]).output) == part["claims"]
        alone = json.loads(runner.invoke(app, ["table", part["name"], "--storage", url, "--claims",
                                                "--format", "json"]).output)
        assert alone["family"] == 2 and alone["studies"] == [part["name"]]
        assert part["trials"] == 6 and part["dataset"]["dataset"] == "synthetic"
        assert set(part["commands"]["cells"]) == {f"resnet-8/{arm}/seed={s}" for arm in ("none", "se(r=4)", "eca(k=3)")
                                                  for s in range(2)}
        assert all(c.startswith("ecasweep train --backbone resnet-8") for c in part["commands"]["cells"].values())
    assert sum(report["verdicts"].values()) == 4  # two claims on one backbone, in each of two studies
    env = report["environment"]
    assert env["cores"] and env["cpu"] and "torch" in env["libraries"] and "optuna" in env["libraries"]

    page = _Text()
    page.feed((out / "report.html").read_text())
    text = " ".join(page.text)
    for part in report["studies"]:
        for row in part["claims"]["rows"]:
            assert row["words"] in text and row["verdict"] in text
    assert page.images and all(src.startswith("data:image/png;base64,") for src in page.images)
    markdown = (out / "report.md").read_text()
    assert "ECA beats no attention" in markdown and "## alpha" in markdown and "## beta" in markdown


def test_bad_report_input_is_one_line_and_writes_nothing(two_studies, tmp_path):
    _, url = two_studies
    a_file = tmp_path / "taken"
    a_file.write_text("mine")
    cases = [(["report", "alpha", "--storage", url, "--output", str(a_file)], "is a file"),
             (["report", "nosuch", "--storage", url, "--output", str(tmp_path / "new")], "no study named 'nosuch'"),
             (["report", "alpha", "--storage", url], "Missing option '--output'"),
             (["table", "alpha", "--storage", url, "--claims", "--family", "alpha,nosuch"], "no study named 'nosuch'"),
             (["table", "alpha", "--storage", url, "--claims", "--family", " , "], "--family: expected study names")]
    for args, message in cases:
        result = runner.invoke(app, args)
        assert result.exit_code == 2 and message in result.output, (args, result.output)
    assert a_file.read_text() == "mine" and not (tmp_path / "new").exists()


def test_a_report_rewritten_replaces_each_file_whole(two_studies, tmp_path):
    _, url = two_studies
    out = tmp_path / "report"
    for names in (["alpha", "beta"], ["alpha"]):
        assert runner.invoke(app, ["report", *names, "--storage", url, "--output", str(out), "--no-figures"]).exit_code == 0
    assert [s["name"] for s in json.loads((out / "report.json").read_text())["studies"]] == ["alpha"]
    assert not [p for p in out.iterdir() if p.name.startswith(".")]  # no temporary file left


# --- ecasweep reproduce ---------------------------------------------------------------------------

def test_reproduce_runs_the_studies_and_rounds_and_writes_the_report(tmp_path):
    url = f"sqlite:///{tmp_path / 'r.db'}"
    first, second = _study(tmp_path, "first"), _study(tmp_path, "second")
    # a claim the first look (6 seeds) decides whatever the noise: SE within 40 points of no attention
    first.write_text(first.read_text() + '\n[[claims]]\nkind = "non-inferiority"\na = "se(r=4)"\nb = "none"\n'
                     'margin = 40.0\nwords = "SE is within 40 points"\n')
    out = tmp_path / "report"
    result = runner.invoke(app, ["reproduce", "--studies", f"{first},{second}", "--storage", url, "--output", str(out),
                                 "--devices", "cpu", "--max-seeds", "12", "--budget", "20m"])
    assert result.exit_code == 0, result.output
    assert "reproduce ended after" in result.output
    report = json.loads((out / "report.json").read_text())
    assert [s["name"] for s in report["studies"]] == ["first", "second"]
    for part in report["studies"]:
        whole = json.loads(runner.invoke(app, ["table", part["name"], "--storage", url, "--format", "json",
                                               "--family", "first,second"]).output)
        assert part["claims"] == whole["claims"]
        # the planned 2 seeds, and rounds of looks (6, 8, 12) for the arms of claims still decidable
        assert part["trials"] >= 6 and all(r["n"] in (2, 6, 8, 12) for r in part["claims"]["rows"])
    wide = next(r for r in report["studies"][0]["claims"]["rows"] if r["words"] == "SE is within 40 points")
    assert wide["n"] >= 6 and wide["verdict"] == "supported"  # rounds ran until its verdict


def test_reproduce_refuses_bad_input_before_anything_trains(tmp_path):
    url = f"sqlite:///{tmp_path / 'r.db'}"
    study = _study(tmp_path, "only")
    a_file = tmp_path / "taken"
    a_file.write_text("mine")
    cases = [(["--studies", "no-such-study"], "no-such-study"),
             (["--studies", str(study), "--budget", "0.001s"], "below one round"),
             (["--studies", str(study), "--budget", "abc"], "--budget"),
             (["--studies", str(study), "--output", str(a_file)], "is a file"),  # the last --output counts
             (["--studies", ","], "--studies"),
             (["--studies", str(study), "--set", "data.dataset=fashion-mnist", "--set", f"data.data_dir={tmp_path / 'none'}"],
              "data directory")]
    for args, message in cases:
        result = runner.invoke(app, ["reproduce", "--storage", url, "--devices", "cpu", "--output",
                                     str(tmp_path / "report"), *args])
        assert result.exit_code == 2 and message in result.output, (args, result.output)
        assert len(result.output.strip().splitlines()) <= 3, result.output  # one message, wrapped at most
    assert not (tmp_path / "r.db").exists() and a_file.read_text() == "mine" and not (tmp_path / "report").exists()


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_a_killed_reproduce_leaves_a_valid_report_and_the_same_command_resumes(tmp_path):
    import signal
    import subprocess
    import sys
    import time

    url = f"sqlite:///{tmp_path / 'r.db'}"
    first = _study(tmp_path, "first")
    second = write_study(tmp_path, name="second", seeds=2, size=4096, epochs=3, ks="[3]")  # long enough to kill
    out = tmp_path / "report"
    command = [sys.executable, "-m", "ecasweep", "reproduce", "--studies", f"{first},{second}", "--storage", url,
               "--output", str(out), "--devices", "cpu", "--max-seeds", "2"]
    proc = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 200
    while not (out / "report.json").exists() and time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.2)
    assert (out / "report.json").exists(), proc.stderr.read() if proc.poll() is not None else "no report in time"
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=120) == 143
    killed = json.loads((out / "report.json").read_text())  # whole: written beside and renamed
    assert [s["name"] for s in killed["studies"]] == ["first"] and killed["studies"][0]["trials"] == 6
    again = subprocess.run(command, capture_output=True, text=True, timeout=240)
    assert again.returncode == 0, again.stderr
    resumed = json.loads((out / "report.json").read_text())
    assert [s["name"] for s in resumed["studies"]] == ["first", "second"]
    assert [s["trials"] for s in resumed["studies"]] == [6, 6]
