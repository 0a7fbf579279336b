"""PNG plots for humans: training curves and the confusion matrix (matplotlib, Agg backend)."""

from __future__ import annotations

from pathlib import Path
from typing import Any


def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg")  # no display in CI or containers
    import matplotlib.pyplot as plt

    return plt


def _save(fig: Any, path: Path) -> None:
    import io

    from pipelines.adapters.artifacts import write_bytes

    buf = io.BytesIO()
    # Fixed metadata keeps the PNG byte-identical across re-runs of identical inputs.
    fig.savefig(buf, format="png", dpi=100, metadata={"Software": None})
    _pyplot().close(fig)
    write_bytes(path, buf.getvalue())


def training_curves(history: dict[str, list[float]], path: Path) -> None:
    """Plot loss and accuracy per epoch, training against validation, to a file."""
    plt = _pyplot()
    fig, (loss_ax, acc_ax) = plt.subplots(1, 2, figsize=(9, 3.5))
    for key, ax in (("loss", loss_ax), ("accuracy", acc_ax)):
        ax.plot(history[key], label=f"train {key}")
        if f"val_{key}" in history:
            ax.plot(history[f"val_{key}"], label=f"validation {key}")
        ax.set_xlabel("epoch")
        ax.set_title(key)
        ax.legend()
    fig.tight_layout()
    _save(fig, path)


def confusion_matrix(matrix: list[list[int]], classes: list[int], path: Path) -> None:
    """Plot a confusion matrix with counts in the cells to a file."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(5.5, 5))
    ax.imshow(matrix, cmap="Blues")
    ax.set_xticks(range(len(classes)), [str(c) for c in classes])
    ax.set_yticks(range(len(classes)), [str(c) for c in classes])
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    peak = max(max(row) for row in matrix) or 1
    for i, row in enumerate(matrix):
        for j, value in enumerate(row):
            ax.text(
                j,
                i,
                str(value),
                ha="center",
                va="center",
                color="white" if value > peak / 2 else "black",
                fontsize=8,
            )
    ax.set_title("confusion matrix (test split, serving artifact)")
    fig.tight_layout()
    _save(fig, path)
