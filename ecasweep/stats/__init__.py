"""Statistics over seeds: summaries and paired tests (``summary``), and the sequential verdicts on a
study's claims (``sequential``).

Imports: numpy and scipy only. Nothing here knows of Optuna, studies or reports; ``report`` and
``sweep.rounds`` call it.
"""
