"""The paper's names, gate formulas and ImageNet figures for an arm."""

from __future__ import annotations

import tomllib
from importlib import resources
from typing import Any, Mapping, Sequence


KERNEL_ATTENTIONS = ("eca", "eca-ns", "ceca")


def paper_reference() -> dict[str, Any]:
    """``ecasweep/reference/eca_net_paper.toml``: the paper's figures with their provenance."""
    text = resources.files("ecasweep").joinpath("reference/eca_net_paper.toml").read_text(encoding="utf-8")
    return tomllib.loads(text)


def _paper_method(params: Mapping[str, Any]) -> str | None:
    """The paper's Table 2 name of the variant ``params`` when it is one of them (ResNet-50 setting)."""
    att, kw = params.get("attention", "none"), params
    if att == "se-gc":
        return {("groups", 16): "SE-GC1", ("group_size", 16): "SE-GC2", ("group_size", 8): "SE-GC3"}.get(
            ("groups", kw["groups"]) if kw.get("groups") is not None else ("group_size", kw.get("group_size")))
    if att in ("eca", "eca-ns"):
        return ("ECA" if att == "eca" else "ECA-NS") if kw.get("k", 3) == 3 else None
    if att == "se":
        return "SE" if kw.get("r", 16) == 16 else None
    return {"none": "Vanilla", "se-var1": "SE-Var1", "se-var2": "SE-Var2", "se-var3": "SE-Var3"}.get(att)


def _paper_top(params: Mapping[str, Any], metric: str, reference: Mapping[str, Any]) -> float | None:
    """The paper's ImageNet ResNet-50 figure (Table 2; Figure 4 anchor for adaptive k)."""
    if metric not in ("top1", "top5"):
        return None
    method = _paper_method(params)
    rows = {r["method"]: r for r in reference["table2"]}
    if method in rows:
        return rows[method][metric]
    adaptive = reference["adaptive_k"]
    if (params.get("attention") == "eca" and params.get("k") == "adaptive" and metric == "top1"
            and params.get("gamma", 2) == adaptive["gamma"] and params.get("beta", 1) == adaptive["beta"]):
        return reference["figure4"]["resnet50_adaptive"]
    return None


def _num(x: Any) -> str:
    return f"{x:g}" if isinstance(x, float) else str(x)


def _ks(kernel_sizes: Sequence[Any] | None) -> str:
    return "/".join(str(k) for k in kernel_sizes) if kernel_sizes else ""


#: the papers' names of timm's modules (ecasweep.attention_timm)
TIMM_LABELS = {"cbam": "CBAM", "lcbam": "CBAM-light", "ge-theta-minus": "GE-θ⁻", "ge-theta": "GE-θ",
               "ge-theta-plus": "GE-θ⁺", "gc": "GC", "gca": "GC (add)", "ese": "eSE", "nl": "Non-local"}


def arm_label(params: Mapping[str, Any], kernel_sizes: Sequence[int] | None = None) -> str:
    """The paper's name for an arm: ``Vanilla``, ``SE (r=16)``, ``SE-GC (G=16)``, ``ECA (k=3)``,
    ``ECA (adaptive, γ=2, β=1 -> k 3/5/5/7)`` (``kernel_sizes``: the per-stage k the trials report).

    >>> arm_label({"attention": "eca", "k": "adaptive"}, [3, 5, 5, 7])
    'ECA (adaptive, γ=2, β=1 -> k 3/5/5/7)'
    """
    att = params.get("attention", "none")
    kw = {k: v for k, v in params.items() if k != "attention"}
    name = {"none": "Vanilla", "se": "SE", "se-var1": "SE-Var1", "se-var2": "SE-Var2", "se-var3": "SE-Var3",
            "se-gc": "SE-GC", "eca-ns": "ECA-NS", "eca": "ECA", "ceca": "C-ECA", **TIMM_LABELS}.get(
        att, att.rpartition(":")[2] if ":" in att else att)  # a user's module by its class ("file.py:Cls")
    parts: list[str] = []
    if att == "se":
        parts.append(f"r={_num(kw.pop('r', 16))}")
    elif att == "se-gc":
        if kw.get("groups") is not None:
            parts.append(f"G={_num(kw.pop('groups'))}")
            kw.pop("group_size", None)
        elif kw.get("group_size") is not None:
            parts.append(f"S={_num(kw.pop('group_size'))}")
            kw.pop("groups", None)
    elif att in KERNEL_ATTENTIONS:
        k = kw.pop("k", 3)
        gamma, beta = kw.pop("gamma", None), kw.pop("beta", None)
        if k == "adaptive":
            parts.append(f"adaptive, γ={_num(2 if gamma is None else gamma)}, β={_num(1 if beta is None else beta)}"
                         + (f" -> k {_ks(kernel_sizes)}" if kernel_sizes else ""))
        elif k == "official":
            parts.append("official" + (f" -> k {_ks(kernel_sizes)}" if kernel_sizes else ""))
        elif isinstance(k, (list, tuple)) or (isinstance(k, str) and k.isdigit()):
            parts.append(f"k {_ks(list(k))}")
        else:
            parts.append(f"k={_num(k)}")
    for key in sorted(kw):  # anything else the arm sets (bias, min_k...) stays visible
        value = kw[key]
        if value is not None and value is not False:
            parts.append(key if value is True else f"{key}={_num(value)}")
    return f"{name} ({', '.join(parts)})" if parts else name


def _formula(params: Mapping[str, Any], reference: Mapping[str, Any]) -> str:
    att = params.get("attention", "none")
    by_method = {r["method"]: r["attention"] for r in reference["table2"]}
    if att == "se-gc":
        if params.get("groups") is not None:
            return f"σ(GC_{_num(params['groups'])}(y))"
        return f"σ(GC_C/{_num(params.get('group_size'))}(y))"
    if att == "ceca":
        return "σ(C1D_k(y)), circular padding"
    method = {"none": "Vanilla", "se": "SE", "se-var1": "SE-Var1", "se-var2": "SE-Var2", "se-var3": "SE-Var3",
              "eca-ns": "ECA-NS", "eca": "ECA"}.get(att)
    return by_method.get(method, "")
