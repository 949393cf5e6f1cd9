"""One comparison used by every fidelity check: candidate logits against a float reference."""

from __future__ import annotations

import numpy as np

__all__ = ["compare", "accuracy"]


def compare(reference: np.ndarray, candidate: np.ndarray) -> dict[str, float]:
    """Logits (N, C) vs (N, C): max/mean abs diff, mean per-sample cosine, top-1 agreement."""
    ref = np.asarray(reference, dtype=np.float64)
    cand = np.asarray(candidate, dtype=np.float64)
    if ref.shape != cand.shape:
        raise ValueError(f"cannot compare logits of shape {cand.shape} with reference {ref.shape}")
    diff = np.abs(ref - cand)
    norms = np.linalg.norm(ref, axis=1) * np.linalg.norm(cand, axis=1)
    cosine = np.sum(ref * cand, axis=1) / np.maximum(norms, 1e-12)
    return {
        "max_abs": float(diff.max()),
        "mean_abs": float(diff.mean()),
        "cosine": float(cosine.mean()),
        "cosine_min": float(cosine.min()),
        "agreement": float(np.mean(ref.argmax(1) == cand.argmax(1))),
    }


def accuracy(logits: np.ndarray, labels: np.ndarray) -> float:
    return float(np.mean(np.asarray(logits).argmax(1) == np.asarray(labels)))
