"""``--plot``: one horizontal bar chart per workload, time on a log axis.

matplotlib is imported only here, only when a plot is asked for.
"""

from __future__ import annotations

import textwrap

__all__ = ["require_matplotlib", "save_plot"]

_COLORS = {"fastgrad": "#d62728", "numpy": "#1f77b4", "torch": "#ff7f0e", "jax": "#2ca02c",
           "micrograd": "#7f7f7f", "reference": "#9467bd"}


def require_matplotlib():
    """pyplot on the file-only Agg backend, or SystemExit with the install command."""
    try:
        import matplotlib
    except ImportError:
        raise SystemExit("--plot needs matplotlib, which is not installed: "
                         "pip install matplotlib") from None
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def save_plot(path: str, runs: list, header: str) -> None:
    """runs: (workload, results) pairs; bars are medians, whiskers min and max."""
    plt = require_matplotlib()
    runs = [(w, [r for r in results if r.timed]) for w, results in runs]
    runs = [(w, rows) for w, rows in runs if rows]
    if not runs:
        print("plot: nothing was timed, no PNG written")
        return
    heights = [max(1.3, 0.38 * len(rows) + 1.1) for _, rows in runs]
    fig, axes = plt.subplots(len(runs), 1, figsize=(10, sum(heights) + 0.6),
                             gridspec_kw={"height_ratios": heights}, squeeze=False)
    for ax, (w, rows) in zip(axes[:, 0], runs):
        scale, unit = _unit(min(r.stats["min"] for r in rows))
        med = [r.stats["median"] * scale for r in rows]
        low = [m - r.stats["min"] * scale for m, r in zip(med, rows)]
        high = [r.stats["max"] * scale - m for m, r in zip(med, rows)]
        colors = [_COLORS.get(r.engine.family, "#8c564b") for r in rows]
        y = range(len(rows))
        ax.barh(list(y), med, xerr=[low, high], color=colors, capsize=2,
                edgecolor=["black" if r.engine.key == w.baseline else "none" for r in rows])
        ax.set_yticks(list(y))
        ax.set_yticklabels([r.engine.label for r in rows], fontsize=8)
        ax.invert_yaxis()
        ax.set_xscale("log")
        ax.set_xlabel(f"{unit} per {w.unit} (median; whiskers min–max), log scale", fontsize=8)
        ax.set_title(textwrap.fill(f"{w.key}: {w.title}", 120), fontsize=8, loc="left")
        for i, (m, r) in enumerate(zip(med, rows)):
            ax.text(r.stats["max"] * scale * 1.15, i, f"{_ratio(r.stats['ratio'])} fastgrad",
                    va="center", fontsize=7)
        ax.tick_params(axis="x", labelsize=8)
        lowest = min(r.stats["min"] for r in rows) * scale
        highest = max(r.stats["max"] for r in rows) * scale
        ax.set_xlim(lowest / 3, highest * 20)
    fig.suptitle(header, fontsize=9)
    fig.tight_layout(rect=(0, 0, 1, 1 - 0.35 / (sum(heights) + 0.6)))
    fig.savefig(path, dpi=90)
    plt.close(fig)


def _ratio(x: float) -> str:
    if x >= 100:
        return f"{x:,.0f}×"
    return f"{x:.3g}×"


def _unit(smallest: float) -> tuple[float, str]:
    if smallest >= 1e-3:
        return 1e3, "ms"
    if smallest >= 1e-6:
        return 1e6, "µs"
    return 1e9, "ns"
