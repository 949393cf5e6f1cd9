"""User data in the ImageFolder layout: root/<class>/*.png|jpg|..., class names from folder names."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from contract.errors import UserError
from contract.files import check_utf8_path
from contract.images import IMAGE_SUFFIXES, resize_to_model
from edgevit.data.splits import ImageSplits, channel_stats, stratified_split

__all__ = ["load_folder_splits", "read_rgb"]


def read_rgb(path: Path, size: int) -> np.ndarray:
    image = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if image is None:
        raise UserError(f"cannot read image {path}: not a valid image file (remove or replace it)")
    return resize_to_model(cv2.cvtColor(image, cv2.COLOR_BGR2RGB), size)


def load_folder_splits(root: str | Path, img_size: int, *, seed: int = 0) -> ImageSplits:
    """root/<class>/*.png...; entries with an image suffix that are not regular files (FIFOs, devices,
    sockets) are skipped and listed in `skipped`."""
    root = Path(root)
    if not root.is_dir():
        raise UserError(f"data folder {root} does not exist; expected root/<class>/*.png (or use --data digits)")
    class_dirs = sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    if len(class_dirs) < 2:
        raise UserError(f"data folder {root} needs at least 2 class subfolders (root/<class>/*.png), "
                        f"found {len(class_dirs)}")
    images, labels, skipped = [], [], []
    for label, d in enumerate(class_dirs):
        named = sorted(f for f in d.iterdir() if f.suffix.lower() in IMAGE_SUFFIXES)
        files = [f for f in named if f.is_file()]   # a FIFO would block the read forever, a device never end
        skipped += [str(f) for f in named if not f.is_file()]
        if not files:
            raise UserError(f"class folder {d} holds no images ({', '.join(IMAGE_SUFFIXES)}); add some or remove it")
        images += [read_rgb(check_utf8_path(f, what="image", fix="rename it"), img_size) for f in files]
        labels += [label] * len(files)
    x, y = np.stack(images), np.asarray(labels, dtype=np.int64)
    train, val, test = stratified_split(y, seed)
    if min(len(train), len(val), len(test)) == 0:
        raise UserError(f"data folder {root} has too few images ({len(y)}) for a train/val/test split; "
                        "give every class at least 10")
    mean, std = channel_stats(x[train])
    return ImageSplits(
        name=str(root), class_names=tuple(d.name for d in class_dirs),
        train_x=x[train], train_y=y[train], val_x=x[val], val_y=y[val], test_x=x[test], test_y=y[test],
        split_seed=seed, mean=mean, std=std, skipped=tuple(skipped),
    )
