"""In-memory image splits (uint8 NHWC RGB) shared by training, calibration and evaluation."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from contract.errors import UserError

__all__ = ["ImageSplits", "stratified_split", "channel_stats", "SPLIT_FRACTIONS"]

SPLIT_FRACTIONS = (0.7, 0.1, 0.2)  # train / val / test


@dataclass(frozen=True)
class ImageSplits:
    """Images as uint8 (N, H, W, 3) RGB arrays with int64 labels.

    train: fitting and int8 calibration; val: model selection; test: every reported accuracy.
    """

    name: str
    class_names: tuple[str, ...]
    train_x: np.ndarray
    train_y: np.ndarray
    val_x: np.ndarray
    val_y: np.ndarray
    test_x: np.ndarray
    test_y: np.ndarray
    split_seed: int
    mean: tuple[float, float, float] = field(default=(0.0, 0.0, 0.0))
    std: tuple[float, float, float] = field(default=(1.0, 1.0, 1.0))
    skipped: tuple[str, ...] = ()   # files of the data set that were not read (special files: FIFOs, devices)

    def __post_init__(self):
        for part in ("train", "val", "test"):
            x, y = getattr(self, f"{part}_x"), getattr(self, f"{part}_y")
            if x.dtype != np.uint8 or x.ndim != 4 or x.shape[-1] != 3:
                raise ValueError(f"{part} images must be uint8 (N, H, W, 3), got {x.dtype} {x.shape}")
            if len(x) != len(y):
                raise ValueError(f"{part}: {len(x)} images but {len(y)} labels")

    @property
    def img_size(self) -> int:
        return int(self.train_x.shape[1])

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    def part(self, name: str) -> tuple[np.ndarray, np.ndarray]:
        if name not in ("train", "val", "test"):
            raise UserError(f"unknown split {name!r}; choose train, val or test")
        return getattr(self, f"{name}_x"), getattr(self, f"{name}_y")


def stratified_split(labels: np.ndarray, seed: int,
                     fractions: tuple[float, float, float] = SPLIT_FRACTIONS) -> tuple[np.ndarray, ...]:
    """Indices (train, val, test), stratified per class, reproducible for a given seed."""
    rng = np.random.default_rng(seed)
    parts: list[list[np.ndarray]] = [[], [], []]
    for c in np.unique(labels):
        idx = rng.permutation(np.flatnonzero(labels == c))
        n_train = int(round(fractions[0] * len(idx)))
        n_val = int(round(fractions[1] * len(idx)))
        for i, chunk in enumerate((idx[:n_train], idx[n_train:n_train + n_val], idx[n_train + n_val:])):
            parts[i].append(chunk)
    return tuple(np.sort(np.concatenate(p)) for p in parts)


def channel_stats(images: np.ndarray) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Per-channel mean and std of uint8 images, in 0..1 units (the usual timm convention)."""
    x = images.reshape(-1, 3).astype(np.float64) / 255.0
    std = np.maximum(x.std(axis=0), 1e-3)
    return tuple(float(v) for v in x.mean(axis=0)), tuple(float(v) for v in std)
