"""Classification metrics of a scored test split."""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.typing import NDArray


def classification(
    labels: NDArray[np.int64], predicted: NDArray[np.int64], classes: list[int]
) -> dict[str, Any]:
    """Accuracy, macro and per-class precision/recall/F1, and the confusion matrix.

    ``labels`` and ``predicted`` are class indices into ``classes``.
    """
    # Imported here: sklearn costs a second at start-up, and a warm `mlops run` never needs it.
    from sklearn.metrics import accuracy_score, confusion_matrix, precision_recall_fscore_support

    idx = list(range(len(classes)))
    p, r, f, support = precision_recall_fscore_support(
        labels, predicted, labels=idx, average=None, zero_division=0
    )
    mp, mr, mf, _ = precision_recall_fscore_support(
        labels, predicted, labels=idx, average="macro", zero_division=0
    )
    return {
        "n": int(labels.shape[0]),
        "accuracy": float(accuracy_score(labels, predicted)),
        "macro_precision": float(mp),
        "macro_recall": float(mr),
        "macro_f1": float(mf),
        "per_class": {
            str(c): {
                "precision": float(p[i]),
                "recall": float(r[i]),
                "f1": float(f[i]),
                "support": int(support[i]),
            }
            for i, c in enumerate(classes)
        },
        "confusion_matrix": confusion_matrix(labels, predicted, labels=idx).tolist(),
    }


def latency_summary(latencies_ms: NDArray[np.float64]) -> dict[str, float]:
    """Percentiles (p50, p90, p99) and the mean of a set of latencies, in milliseconds."""
    p50, p90, p99 = np.percentile(latencies_ms, [50, 90, 99])
    return {
        "p50": float(p50),
        "p90": float(p90),
        "p99": float(p99),
        "mean": float(latencies_ms.mean()),
    }
