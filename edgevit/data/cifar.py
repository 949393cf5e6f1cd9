"""CIFAR-10 from the standard python-pickle batches in a local folder (nothing is downloaded).

Expects data_batch_1..5, test_batch and batches.meta (the "CIFAR-10 python version" archive,
extracted). The official test batch is the test split; val is a seeded 10% of the training batches.
The batches are pickles: they are read with an unpickler that only accepts plain containers and
numpy arrays, so a tampered file cannot run code.
"""

from __future__ import annotations

import pickle
from pathlib import Path

import cv2
import numpy as np

from contract.errors import UserError
from edgevit.data.splits import ImageSplits, channel_stats

__all__ = ["load_cifar10_splits"]

_ALLOWED = {
    ("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
    ("numpy", "ndarray"), ("numpy", "dtype"),
    ("numpy.core.multiarray", "scalar"), ("numpy._core.multiarray", "scalar"),
}


class _SafeUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str):
        if (module, name) not in _ALLOWED:
            raise pickle.UnpicklingError(f"refusing to load {module}.{name}")
        return super().find_class(module, name)


def _load_batch(path: Path) -> dict:
    if not path.is_file():
        raise UserError(f"CIFAR-10 file {path} is missing; extract cifar-10-python.tar.gz into {path.parent}")
    try:
        with open(path, "rb") as f:
            return _SafeUnpickler(f, encoding="bytes").load()
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError) as e:
        raise UserError(f"CIFAR-10 file {path} is corrupt or not a CIFAR batch ({e})") from None


def _images(batch: dict, path: Path, img_size: int) -> tuple[np.ndarray, np.ndarray]:
    try:
        x = np.asarray(batch[b"data"], dtype=np.uint8).reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1)
        y = np.asarray(batch[b"labels"], dtype=np.int64)
    except (KeyError, ValueError, TypeError) as e:
        raise UserError(f"CIFAR-10 file {path} does not hold 'data' and 'labels' ({e})") from None
    if len(x) != len(y) or (len(y) and not 0 <= y.min() <= y.max() < 10):
        raise UserError(f"CIFAR-10 file {path}: {len(x)} images with {len(y)} labels, labels "
                        f"{int(y.min()) if len(y) else '-'}..{int(y.max()) if len(y) else '-'}; each image needs one "
                        "label 0..9: extract the official cifar-10-python.tar.gz again")
    if img_size != 32:
        x = np.stack([cv2.resize(im, (img_size, img_size), interpolation=cv2.INTER_LINEAR) for im in x])
    return x, y


def _label_names(path: Path) -> tuple[str, ...]:
    """The 10 class names of batches.meta (bytes, as the official file has them, or text)."""
    meta = _load_batch(path)
    raw = meta.get(b"label_names") if isinstance(meta, dict) else None
    if not (isinstance(raw, (list, tuple)) and len(raw) == 10 and all(isinstance(n, (bytes, str)) for n in raw)):
        shown = raw[:3] if isinstance(raw, (list, tuple)) else raw
        raise UserError(f"CIFAR-10 file {path}: label_names must be 10 class names (text), got {shown!r}...; "
                        "extract the official cifar-10-python.tar.gz again")
    try:
        return tuple(n.decode() if isinstance(n, bytes) else n for n in raw)
    except UnicodeDecodeError as e:
        raise UserError(f"CIFAR-10 file {path}: a label name is not UTF-8 text ({e}); extract the official "
                        "archive again") from None


def load_cifar10_splits(root: str | Path, img_size: int, *, seed: int = 0) -> ImageSplits:
    root = Path(root)
    if not root.is_dir():
        raise UserError(f"CIFAR-10 folder {root} does not exist; download and extract the python version there")
    parts = [_images(_load_batch(root / f"data_batch_{i}"), root / f"data_batch_{i}", img_size) for i in range(1, 6)]
    x = np.concatenate([p[0] for p in parts])
    y = np.concatenate([p[1] for p in parts])
    test_x, test_y = _images(_load_batch(root / "test_batch"), root / "test_batch", img_size)
    names = _label_names(root / "batches.meta")
    perm = np.random.default_rng(seed).permutation(len(y))
    n_val = len(y) // 10
    val, train = np.sort(perm[:n_val]), np.sort(perm[n_val:])
    mean, std = channel_stats(x[train])
    return ImageSplits(
        name="cifar10", class_names=names, train_x=x[train], train_y=y[train], val_x=x[val], val_y=y[val],
        test_x=test_x, test_y=test_y, split_seed=seed, mean=mean, std=std,
    )
