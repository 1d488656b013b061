"""Scheduling a study on Optuna: cells -> trials, claimed exactly once by any number of workers.

- ``worker``: opening a study, enqueuing and claiming cells, the worker loop, local worker slots;
- ``runner``: ``run``'s orchestration (workers, progress display, the summary at the end);
- ``rounds``: ``--until-resolved``: rounds of seeds added where claims are still open;
- ``estimate``: how long cells take on this machine (``--dry-run``, round planning);
- ``identity``: which host, process and SLURM job a worker is;
- ``signals``: Ctrl-C and SIGTERM, delivered to every worker.

Imports: ``engine``, ``store``, ``spec``, ``stats`` and ``report`` (for the Claims that decide rounds).
A new way to start workers on other machines goes in ``launch``, which may import this package.
"""
