"""Fidelity of an artifact against the PyTorch float reference, on the device runtime.

The targets live here, in one place; the report marks each artifact pass/fail against them.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from export.compare import accuracy, compare
from export.litert import graph_facts, load_interpreter, run_images

__all__ = ["TARGETS", "tflite_fidelity", "judge"]

# format -> {metric: (op, bound)}; accuracy_drop_pp is PyTorch fp32 accuracy minus this, in points
TARGETS = {
    "onnx": {"max_abs": ("<=", 1e-4)},
    "fp32": {"max_abs": ("<=", 1e-4)},
    "fp16": {"agreement": (">=", 0.995)},
    "int8": {"agreement": (">=", 0.99), "accuracy_drop_pp": ("<=", 0.5)},
}


def tflite_fidelity(path: Path, images: np.ndarray, labels: np.ndarray | None, reference: np.ndarray,
                    *, threads: int = 1) -> dict:
    interp = load_interpreter(path, threads=threads)
    logits = run_images(interp, images)
    result = {**compare(reference, logits), **graph_facts(interp)}
    if labels is not None:
        result["accuracy"] = accuracy(logits, labels)
    return result


def judge(fmt: str, metrics: dict, reference_accuracy: float | None) -> dict:
    """Adds accuracy_drop_pp (when labels exist) and a pass/fail per target."""
    if reference_accuracy is not None and metrics.get("accuracy") is not None:
        metrics["accuracy_drop_pp"] = round(100.0 * (reference_accuracy - metrics["accuracy"]), 4)
    checks = {}
    for metric, (op, bound) in TARGETS.get(fmt, {}).items():
        if metric in metrics:
            value = metrics[metric]
            checks[metric] = {"target": f"{op} {bound}", "value": value,
                              "pass": bool(value <= bound if op == "<=" else value >= bound)}
    metrics["checks"] = checks
    metrics["pass"] = all(c["pass"] for c in checks.values())
    return metrics
