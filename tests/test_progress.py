"""The live display of `run` and `worker`: every running trial, whichever process runs it, read from
the storage (cell, epoch, worker, time against the expected time), and the study's ETA from the
start (the dry run's estimate before any trial has finished)."""

from __future__ import annotations

from rich.console import Console

from ecasweep.sweep.runner import StudyProgress
from ecasweep.spec import load_study
from ecasweep.store.storage import open_storage
from ecasweep.sweep.cells import claim, ensure_cells
from ecasweep.sweep.study import open_study

from conftest import write_study


def test_running_trials_of_other_processes_are_shown_with_an_eta_from_the_start(tmp_path):
    spec = load_study(str(write_study(tmp_path, name="progress", seeds=1, size=128, epochs=2, ks="[3]")))
    url = f"sqlite:///{tmp_path / 'p.db'}"
    study = open_study(spec, open_storage(url), None, url)
    ensure_cells(study, spec, retry_failed=True)
    trial = claim(study)  # RUNNING, as a worker process leaves it in the storage while it trains
    trial.set_user_attr("worker", "elsewhere:4242")
    trial.set_user_attr("epoch", 1)
    console = Console(record=True, width=120, color_system=None, force_terminal=True)  # a terminal: probed ETA
    with StudyProgress(study, spec, console, n_workers=2) as progress:
        study_line = progress.progress.tasks[0]
        assert study_line.fields["info"].startswith("running 1 ")  # not "running 0"
        assert study_line.fields["eta"] is not None  # no trial has finished: the probe's estimate
    text = console.export_text()
    assert f"#{trial.number}" in text and trial.user_attrs["cell"] in text
    assert "epoch 1/2" in text and "pid 4242" in text and "ETA" in text


def test_this_processs_trial_counts_as_running_while_it_trains(tmp_path):
    spec = load_study(str(write_study(tmp_path, name="progress1", seeds=1, size=128, epochs=1, ks="[3]")))
    url = f"sqlite:///{tmp_path / 'p.db'}"
    study = open_study(spec, open_storage(url), None, url)
    ensure_cells(study, spec, retry_failed=True)
    console = Console(record=True, width=120, color_system=None)
    with StudyProgress(study, spec, console, n_workers=1) as progress:
        trial = claim(study)
        progress.on_event("start", {"number": trial.number, "cell": trial.user_attrs["cell"], "epochs": 1})
        assert progress.progress.tasks[0].fields["info"].startswith("running 1 ")
        progress.on_event("epoch", {"number": trial.number, "epoch": 1, "train_loss": 1.5,
                                    "images_per_second": 900.0})
        assert any("loss 1.500" in t.fields.get("info", "") for t in progress.progress.tasks[1:])
