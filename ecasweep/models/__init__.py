"""Models: the channel-attention variants, the backbones they are placed in, and their catalogue.

- ``catalogue``: the torch-free facts of the variants (names, their arguments and defaults, Eq. 12's
  adaptive kernel size), read by ``spec`` and by ``list``/``show``;
- ``shapes``: the torch-free geometry of the backbones (each stage's channels, the official k's);
- ``attention``: every variant of the paper's Table 2 behind one registry (``create_attention``);
- ``timm_attention``: thin adapters to timm's attention modules (Table 3's other methods);
- ``backbones``: CIFAR and ImageNet ResNets and MobileNetV2 from torchvision with attention injected;
- ``user``: a user's own attention module (or network) named by a study, ``"my_attn.py:MyAttention"``,
  ``"my_pkg.attn:MyAttention"`` or an entry-point name: loading, checking, and its code's identity.

Imports: ``errors`` only. Nothing in ``models`` knows of studies, storage or training.
A new attention module goes in ``attention`` (and its name, arguments and defaults in ``catalogue``).
"""
