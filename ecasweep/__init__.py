"""ecasweep: re-run and extend the ablation studies of ECA-Net (Wang et al., CVPR 2020).

The library is usable without the CLI:

    >>> from ecasweep import build_model, summarize
    >>> model = build_model("resnet-20", attention="eca", k=3)

The names below are imported on first use (PEP 562), so that ``ecasweep --help`` and other commands
that train nothing do not pay for importing torch.
"""

__version__ = "0.1.0"

__all__ = ["__version__", "build_model", "create_attention", "summarize"]

_LAZY = {"create_attention": "models.attention", "build_model": "models.backbones", "summarize": "models.backbones"}


def __getattr__(name: str):
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(f".{_LAZY[name]}", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
