"""PNG charts for evaluation and reports (matplotlib, headless)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from backend.evaluation.metrics import Reliability


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def reliability_diagram(rel: Reliability, path: Path, title: str = "Reliability") -> Path:
    """Bars of accuracy per confidence bin against the diagonal, with the ECE in the title."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(5, 5), dpi=100)
    centers = (rel.edges[:-1] + rel.edges[1:]) / 2
    width = rel.edges[1] - rel.edges[0]
    filled = rel.counts > 0
    ax.bar(centers[filled], rel.accuracy[filled], width=width * 0.9, color="#4c72b0", edgecolor="black", label="accuracy")
    ax.plot([0, 1], [0, 1], "--", color="gray", label="perfect calibration")
    ax.scatter(centers[filled], rel.confidence[filled], color="#dd8452", marker="_", s=300, linewidths=2, zorder=3,
               label="mean confidence in bin")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    ax.set_xlabel("confidence (score)")
    ax.set_ylabel("accuracy")
    ax.set_title(f"{title} — ECE {rel.ece * 100:.1f} %")
    ax.legend(loc="upper left", fontsize=8)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path


def confusion_plot(counts: np.ndarray, labels: Sequence[str], path: Path, title: str = "Confusion matrix") -> Path:
    """Row-normalised confusion matrix (true rows, predicted columns)."""
    plt = _pyplot()
    size = max(5, 0.5 * len(labels) + 2)
    fig, ax = plt.subplots(figsize=(size, size), dpi=100)
    rows = counts.sum(axis=1, keepdims=True)
    norm = np.divide(counts, rows, out=np.zeros(counts.shape, dtype=float), where=rows > 0)
    ax.imshow(norm, cmap="Blues", vmin=0, vmax=1)
    ax.set_xticks(range(len(labels)), labels, rotation=60, ha="right", fontsize=8)
    ax.set_yticks(range(len(labels)), labels, fontsize=8)
    for i in range(len(labels)):
        for j in range(len(labels)):
            if counts[i, j]:
                ax.text(j, i, str(counts[i, j]), ha="center", va="center", fontsize=7,
                        color="white" if norm[i, j] > 0.5 else "black")
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(title)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path


def line_chart(xs: Sequence[float], series: dict[str, Sequence[float]], path: Path, title: str, xlabel: str,
               ylabel: str) -> Path:
    """A simple multi-series line chart (learning curves)."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6, 4), dpi=100)
    for name, ys in series.items():
        ax.plot(list(xs), list(ys), marker="o", label=name)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path
