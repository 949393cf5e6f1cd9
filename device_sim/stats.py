"""Latency statistics in the shape TFLite's benchmark_model reports them."""

from __future__ import annotations

import numpy as np

__all__ = ["summarize"]


def summarize(values_ms) -> dict[str, float | int]:
    """min/mean/std/p50/p90/p95/p99/max and jitter (mean absolute change between consecutive values)."""
    v = np.asarray(list(values_ms), dtype=np.float64)
    if v.size == 0:
        return {"count": 0}
    p50, p90, p95, p99 = np.percentile(v, [50, 90, 95, 99])
    return {
        "count": int(v.size), "min": float(v.min()), "mean": float(v.mean()), "std": float(v.std()),
        "p50": float(p50), "p90": float(p90), "p95": float(p95), "p99": float(p99), "max": float(v.max()),
        "jitter": float(np.abs(np.diff(v)).mean()) if v.size > 1 else 0.0,
    }
