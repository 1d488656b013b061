"""What lives in Optuna's storage: the storage URL, the trials' records, the stored spec.

- ``storage``: opening SQLite/PostgreSQL/MySQL storages, URLs (masked for display), heartbeats;
- ``params``: a cell's factors as an Optuna trial's parameters and distributions;
- ``results``: trials read back as ``TrialRecord`` (the cell's attributes, metrics, failures);
- ``stored_spec``: the study's resolved spec, written into and read from the study's attributes;
- ``locking``: the study lock (one process writes a study's spec or enqueues its cells at a time);
- ``liveness``: heartbeats and stale trials of workers that died.

Imports: ``spec``, ``models`` (names only) and ``errors``; never the scheduler or a report.
"""
