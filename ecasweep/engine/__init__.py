"""One trial's engine: a ``TrialConfig`` in, a ``TrialResult`` out.

- ``config``: the trial's configuration (data, model, training recipe, runtime) and its identity;
- ``data``: datasets (Fashion-MNIST, CIFAR, ImageNet folders, synthetic) and the batch loader;
- ``devices``: CPU/GPU choice and autocast;
- ``train``: build, train, evaluate, checkpoint one trial (``run_trial``);
- ``checkpoint``: per-trial checkpoints keyed by the configuration's identity;
- ``command``: the ``ecasweep train`` command line that reruns one trial;
- ``faults``: fault-injection points used by the reliability tests.

Imports: ``models`` and ``errors``. A trial never reads the study or the storage.
"""
