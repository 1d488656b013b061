"""The efficiency columns of a Table 3 study: speed measured in the run's own trials, the paper's Table 3 beside.

The ECA-Net paper's Table 3 (Wang et al., CVPR 2020, arXiv 1910.03151) gives each attention method's
parameters, FLOPs, training and inference images/s and accuracy. A ``layout = "table3"`` study gets the
same columns from its trials: parameters and FLOPs as each trial counted them, training images/s (the
trial's epochs) and inference images/s (its test-set evaluation), each as the median over seeds and as
the overhead against the baseline arm on the same backbone, ``baseline img/s / arm img/s - 1`` (extra
time per image, as the paper's FPS imply). The paper's figures for the matching method go beside them.

Example:
    >>> table3_method({"attention": "cbam"})
    'CBAM'
"""

from __future__ import annotations

import statistics
from typing import Any, Mapping, Sequence

#: the paper's Table 3 method names of an attention variant (the MobileNetV2 rows name them differently)
TABLE3_METHODS = {"none": ("ResNet", "MobileNetV2"), "se": ("SENet", "SENet (r=8)"), "cbam": ("CBAM",),
                   "eca": ("ECA-Net",)}


def table3_method(params: Mapping[str, Any]) -> str | None:
    """The paper's Table 3 name of an arm when the paper reports it (SE at r = 16, CBAM at its
    defaults, ECA with the adaptive k), else None."""
    attention = params.get("attention", "none")
    if attention == "se" and params.get("r", 16) != 16:
        return None
    if attention == "cbam" and any(params.get(k) not in (None, d) for k, d in (("r", 16), ("spatial_k", 7))):
        return None
    if attention == "eca" and params.get("k") != "adaptive":
        return None
    return TABLE3_METHODS.get(attention, (None,))[0]


def paper_table3_row(params: Mapping[str, Any], backbone: str, reference: Mapping[str, Any]) -> dict[str, Any] | None:
    """The paper's Table 3 row for the arm on ``backbone`` (ResNet-50's when the paper has no row for
    that backbone), with ``backbone`` saying whose figures they are and the overheads vs its vanilla row."""
    method = table3_method(params)
    if method is None:
        return None
    rows = reference.get("table3", [])
    source = backbone if any(r["backbone"] == backbone for r in rows) else "resnet-50"
    if source == "mobilenet-v2" and params.get("attention") == "se":
        return None  # the paper's MobileNetV2 row is SE at r = 8, not this arm
    names = TABLE3_METHODS[params.get("attention", "none")]
    row = next((r for r in rows if r["backbone"] == source and r["method"] in names), None)
    base = next((r for r in rows if r["backbone"] == source and r["method"] in TABLE3_METHODS["none"]), None)
    if row is None or base is None:
        return None
    return {"backbone": source, "method": row["method"], "params_m": row["params_m"], "gflops": row["gflops"],
            "train_fps": row["train_fps"], "infer_fps": row["infer_fps"], "top1": row["top1"],
            "train_overhead": base["train_fps"] / row["train_fps"] - 1,
            "infer_overhead": base["infer_fps"] / row["infer_fps"] - 1}


def median_metric(records: Sequence[Any], key: str) -> float | None:
    """Median over the complete trials of a positive numeric metric, or None."""
    values = [float(r.metrics[key]) for r in records
              if isinstance(r.metrics.get(key), (int, float)) and r.metrics[key] > 0]
    return statistics.median(values) if values else None


def add_efficiency(rows: Sequence[Any], complete: Mapping[tuple[str, str], Sequence[Any]], baseline: str | None,
                   reference: Mapping[str, Any]) -> None:
    """Fill each row's speed, overheads against ``baseline`` on its backbone, and the paper's Table 3 row.

    ``complete``: (backbone, arm) -> its complete trial records.
    """
    for r in rows:
        trials = complete.get((r.backbone, r.arm), [])
        r.train_images_per_s = median_metric(trials, "images_per_second")
        r.infer_images_per_s = median_metric(trials, "infer_images_per_second")
        r.paper_table3 = paper_table3_row(r.params, r.backbone, reference)
        if r.paper is None and r.paper_table3 is not None and r.paper_table3["backbone"] == "resnet-50":
            r.paper = r.paper_table3["top1"]
    for r in rows:
        base = next((b for b in rows if b.backbone == r.backbone and b.arm == baseline), None)
        if base is None:
            continue
        r.train_overhead = _overhead(base.train_images_per_s, r.train_images_per_s)
        r.infer_overhead = _overhead(base.infer_images_per_s, r.infer_images_per_s)


def _overhead(base: float | None, value: float | None) -> float | None:
    return base / value - 1 if base and value else None


def caption(devices: Sequence[str], eval_batch_size: Any) -> str:
    """What the efficiency columns are, for the table's caption."""
    return ("MACs: multiply-adds of one forward pass of one image (the paper's \"FLOPs\"). "
            f"train/infer img/s: median over seeds of each trial's training throughput and of its test-set "
            f"evaluation (batch {eval_batch_size}), measured inside the trials on {', '.join(devices) or 'the run'}"
            " while the run's other workers shared the machine; overhead = baseline img/s / arm img/s - 1, on "
            "the same backbone. For interleaved timings on an idle device: ecasweep bench models. "
            "paper Table 3: Wang et al., CVPR 2020 (ResNet-50 unless the backbone has its own rows; "
            "4x RTX 2080Ti), a reference for a different setting, not a prediction for this one.")


def columns(fmt_count) -> list[tuple[str, Any]]:
    """(header, row -> text) of the efficiency columns; ``fmt_count`` formats a count (``12.3M``).

    MACs (multiply-adds, half of ``flops``) are what the paper's Table 3 calls FLOPs.
    """
    def pct(x: float | None) -> str:
        return "" if x is None else f"{100 * x:+.1f}%"

    def paper(r, key: str) -> str:
        p = r.paper_table3
        if p is None:
            return ""
        if key == "overhead":
            return f"{pct(p['train_overhead'])} / {pct(p['infer_overhead'])}"
        return f"{p['params_m']:.2f}M" if key == "params_m" else f"{p['gflops']:.2f}G"

    return [("params", lambda r: fmt_count(r.total_params)),
            ("MACs", lambda r: "" if r.flops is None else fmt_count(r.flops // 2)),
            ("train img/s", lambda r: "" if r.train_images_per_s is None else f"{r.train_images_per_s:.0f}"),
            ("train overhead", lambda r: pct(r.train_overhead)),
            ("infer img/s", lambda r: "" if r.infer_images_per_s is None else f"{r.infer_images_per_s:.0f}"),
            ("infer overhead", lambda r: pct(r.infer_overhead)),
            ("paper params", lambda r: paper(r, "params_m")), ("paper FLOPs", lambda r: paper(r, "gflops")),
            ("paper train/infer overhead", lambda r: paper(r, "overhead"))]
