"""Study files -> validated study specs: profiles, overrides, arms, cells.

A study is one ablation of the ECA-Net paper (Wang et al., CVPR 2020, arXiv 1910.03151) written as a
TOML file in ``studies/`` (data, never code). ``load_study`` resolves it for a *profile* (``quick``,
``cifar`` or ``imagenet``) and ``--set`` overrides into a ``StudySpec``: the arms (attention variant
and its arguments), the backbones, the seeds and one ``TrialConfig`` per cell (arm x backbone x
seed). Every problem a user can cause is one ``SpecError`` naming the file, the key and what was
expected.

Study file format
-----------------
Top-level keys (all optional except ``layout`` and the arms)::

    name = "kernel-size"            # default: the file name without .toml
    description = "ECA kernel size k vs. the adaptive k, with SE and no attention as references"
    mirrors = "Figure 4"            # what of the paper it re-runs (for `ecasweep list` and reports)
    layout = "figure4"              # how reports lay it out: table2 | figure4 | gamma-beta | search | table3
    baseline = "none"               # an arm id; default: the first arm
    seeds = 2                       # seeds 0 .. seeds-1 (usually from the profile)
    backbones = ["resnet-8", "resnet-14"]   # (usually from the profile; a single string is allowed)

    [model]                         # model options shared by every arm: `width` (a positive int;
    width = 16                      #   base width of a CIFAR ResNet)
    [data]                          # any field of config.DataConfig (dataset, subset, val_split, ...)
    subset = 12000
    [train]                         # any field of config.TrainConfig (epochs, lr, schedule, ...)
    epochs = 3

    [[arms]]                        # one arm: an attention variant and its arguments
    attention = "none"
    [[arms]]
    attention = "se"
    r = 16                          # arguments: r, groups, group_size, k, gamma, beta, min_k, bias,
    # id = "SE"                     #   round_to, spatial_k, extent (those the variant takes); optional id
    [[grid]]                        # several arms: list-valued keys expand to their product
    attention = "eca"
    k = [3, 5, 7, 9, "adaptive"]
    [[arms]]                        # your own module (docs/user-modules.md): "file.py:Class" next to
    attention = "my_attn.py:MyAttention"    # the study, "pkg.mod:Class", or an entry-point name;
    alpha = 0.5                     #   its own keyword arguments; id: MyAttention(alpha=0.5)

    [profiles.imagenet]             # overrides of any top-level key for one profile
    seeds = 1
    [profiles.imagenet.train]
    epochs = 90

    [launcher.slurm]                # defaults for `ecasweep submit` (never part of results): jobs,
    partition = "gpu"               #   partition, time, cpus_per_job, gpus_per_job, mem, account,
    gpus_per_job = 1                #   qos, sbatch (extra #SBATCH options); see launch/slurm.py

Arms come first in file order of ``[[arms]]``, then the expansion of each ``[[grid]]`` in file order
(the last key varies fastest). ``k`` is an odd int >= 1 or ``"adaptive"`` (Eq. 12 of the paper, with
``gamma`` > 0 and ``beta``); ``gamma``, ``beta`` and ``min_k`` apply only to an adaptive ``k`` (an
error in ``[[arms]]``; in a ``[[grid]]`` they are dropped for the int k's, so ``k = [3, "adaptive"]``
with ``gamma = [1, 2]`` gives three arms). Arguments left at the variant's default are dropped,
except the defining ones (``r`` of se, ``k`` of the ECA family and ``gamma``/``beta`` of an adaptive
k), which are filled in. An arm's id is then canonical and stable: ``none``, ``se(r=16)``,
``se-gc(groups=16)``, ``eca(k=3)``, ``eca(k=adaptive,gamma=2,beta=1)`` (arguments in the order
above). Every arm is built for every stage of every backbone (``models.shapes.stage_channels``), so an
``r`` that does not divide some stage's channel count is an error before anything trains.

A search study (``layout = "search"``) has no arms but a ``[search]`` table sampled by Optuna; its
objective is the validation top-1, so it needs ``data.val_split > 0``::

    [search]
    n_trials = 12
    sampler = "tpe"                 # tpe | random
    pruner = "median"               # median | hyperband | none
    [search.space]                  # a list: categorical; {low, high[, log]}: float range (gamma,
    attention = ["eca", "eca-ns", "ceca"]   #   beta only); a scalar: fixed
    k = [3, 5, 7, 9, "adaptive"]
    gamma = { low = 1.0, high = 3.0 }       # gamma, beta, min_k are sampled only when k is adaptive
    beta = { low = 0.0, high = 2.0 }

Resolution order: the profile's defaults (``_profiles.toml`` next to the study, else the repo's
``studies/_profiles.toml``; files starting with ``_`` are not studies) -> the study's top level ->
its ``[profiles.<profile>]`` -> ``--set key=value`` overrides. Tables (``data``, ``train``,
``model``, ``search``) merge key by key; everything else, lists included, is replaced. A ``--set``
value is a TOML value (``train.lr=0.05``, ``'backbones=["resnet-20"]'``), or else a bare string
(``data.dataset=synthetic``). ``data.subset``, ``data.data_dir`` and ``model.width`` take ``"none"``
for "not set" (TOML has no null).

Example:
    >>> spec = load_study("kernel-size", "quick", ["train.epochs=1", "seeds=1"])
    >>> [arm.id for arm in spec.arms][:3]
    ['none', 'se(r=16)', 'eca(k=3)']
    >>> spec.cells()[0].key
    'resnet-8/none/seed=0'
"""

from __future__ import annotations

from .arms import Arm
from .claims import ClaimSpec, claims_from_tables
from .files import BUILTIN_STUDIES, DEFAULT_PROFILE, PROFILES_FILE, list_studies, load_study, study_paths
from .schema import ADAPTIVE_ONLY, ARM_ARGS, FLOAT_ARGS, LAYOUTS, MAX_ARMS, PRUNERS, SAMPLERS
from .search import SearchSpec
from .study import Cell, StudySpec, alias_notes

__all__ = ["ADAPTIVE_ONLY", "ARM_ARGS", "Arm", "BUILTIN_STUDIES", "Cell", "ClaimSpec", "DEFAULT_PROFILE", "FLOAT_ARGS",
           "LAYOUTS", "MAX_ARMS", "PROFILES_FILE", "PRUNERS", "SAMPLERS", "SearchSpec", "StudySpec", "alias_notes",
           "claims_from_tables", "list_studies", "load_study", "study_paths"]
