"""ecasweep: re-run and extend the ablation studies of ECA-Net (Wang et al., CVPR 2020).

The library is usable without the CLI:

    >>> from ecasweep import build_model, summarize
    >>> model = build_model("resnet-20", attention="eca", k=3)
"""

__version__ = "0.1.0"

from .attention import create_attention  # noqa: E402
from .backbones import build_model, summarize  # noqa: E402

__all__ = ["__version__", "build_model", "create_attention", "summarize"]
