"""Launching workers beyond one machine: what a cluster can share (``shared``), SLURM jobs through
submitit (``slurm``), and which job is doing what (``jobs``).

A launcher only starts workers; each one runs the same loop as ``ecasweep worker`` (``sweep.work``)
against a storage every node reaches, so cells are still claimed exactly once by the storage.
"""
