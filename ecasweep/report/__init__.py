"""Tables, comparisons and plots of a study, computed once and rendered in several formats.

``build_table(spec, records)`` turns the stored trials (``results.read_records``) into a plain
``Table``: one ``Row`` per arm per backbone, with its statistics over seeds from ``ecasweep.stats``.
``render(table, fmt)`` then draws it as ``rich`` (a Rich renderable that fits the console width),
``markdown``, ``csv``, ``json`` or ``latex``. ``compare_arms`` puts two arms side by side, seed by
seed; ``plot`` draws the study with matplotlib. A report never trains and never writes to the study.

Example:
    >>> import optuna
    >>> from ecasweep.store.results import read_records
    >>> from ecasweep.store.stored_spec import read_spec
    >>> study = optuna.load_study(study_name="table2", storage="sqlite:///ecasweep.db")  # doctest: +SKIP
    >>> table = build_table(read_spec(study.user_attrs), read_records(study))  # doctest: +SKIP
    >>> print(render(table, "markdown"))  # doctest: +SKIP

JSON schema (``render(table, "json")``, schema id ``ecasweep.table/1``)::

    {
      "schema": "ecasweep.table/1",
      "study": str,             # the spec's name
      "metric": "top1" | "top5" | "loss",
      "layout": "table2" | "figure4" | "gamma-beta" | "search" | "table3",
      "baseline": str | null,   # arm id that delta and p refer to
      "test": "t" | "wilcoxon",
      "confidence": 0.95,
      "caption": str,
      "devices": [str], "failed": int, "planned": int,
      "power": [{"backbone", "arm_a", "arm_b", "label_a", "label_b", "delta", "sd_diff", "seeds"}],
      "rows": [{
        "label": str,           # the paper's naming, e.g. "ECA (k=3)", "SE-GC (S=16)"
        "backbone": str, "arm": str, "params": {"attention": str, ...kwargs},
        "formula": str,         # the gate as in the paper's Table 2, e.g. "σ(C1D_k(y))"
        "kernel_sizes": [int] | null,
        "attention_params": int | null, "total_params": int | null, "flops": int | null,
        "n": int,               # complete seeds
        "planned": int,         # seeds the spec plans
        "failed": int,          # cells whose counting trial failed
        "mean", "std", "ci_low", "ci_high": float | null,   # of the metric over seeds, t interval
        "boot_low", "boot_high": float | null,              # bootstrap interval (with bootstrap=True)
        "top5_mean": float | null,
        "objective": float | null,                          # mean of the trials' Optuna values
        "delta": float | null,  # mean - baseline mean on the same backbone (paired seeds when shared)
        "delta_ci_low", "delta_ci_high": float | null,
        "p_raw": float | null,  # test vs the baseline
        "p_value": float | null,  # Holm-adjusted over the comparisons on the same backbone
        "p_vs_best": float | null,  # Holm-adjusted p vs the best arm of the backbone
        "best": bool, "tied_with_best": bool,  # the best row is tied with itself
        "untested": bool,       # no test vs the best was possible (fewer than 2 seeds): not tied, not worse
        "paper": float | null,  # the paper's ImageNet ResNet-50 figure for this variant
        "paper_method": str | null,  # the paper's name for it ("SE-GC1", "ECA"...)
        # layout "table3" only (report.efficiency), else null: medians over seeds of the trials' own
        # throughput, overheads = baseline img/s / arm img/s - 1, the paper's Table 3 row
        "train_images_per_s", "infer_images_per_s", "train_overhead", "infer_overhead": float | null,
        "paper_table3": {"backbone", "method", "params_m", "gflops", "train_fps", "infer_fps", "top1",
                         "train_overhead", "infer_overhead"} | null,
        "values": {"<seed>": float}  # the metric of each complete seed (CSV: this object as JSON)
      }]
    }

Numbers are plain JSON numbers (never NaN); what cannot be computed is null.
"""

from __future__ import annotations

from .labels import (  # noqa: F401
    KERNEL_ATTENTIONS, paper_reference, _paper_method, _paper_top, _num, _ks, arm_label, _formula,
)
from .tables import (  # noqa: F401
    METRICS, LAYOUTS, SCHEMA, PAPER_COLUMN, Row, ROW_FIELDS, Table, _Cells, _group, _values, _first_metric,
    _mean, build_table, _against_baseline, _mark_best, _closest_pair, _caption,
)
from .render import (  # noqa: F401
    FORMATS, _digits, _fmt, _fmt_p, _mean_std, _n, _tied, _mark, _count, _ci, _flat_columns, render, _render_csv,
    _render_markdown, _LATEX_SPECIAL, _LATEX_UNICODE, latex_escape, _render_latex, _Fitted, _render_rich, _fit,
    _rich_flat, _BLOCKS, _bar, _rich_figure4, _rich_gamma_beta,
)
from .compare import (  # noqa: F401
    _find_arm, compare_arms, render_comparison,
)
from .plots import (  # noqa: F401
    _figure, plot, _plot_bars, _plot_figure4, _plot_gamma_beta, _plot_search,
)
from .verdicts import (  # noqa: F401
    ClaimRow, ClaimsTable, build_claims, build_family, render_claims, render_with_claims,
)
