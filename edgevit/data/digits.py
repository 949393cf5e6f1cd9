"""The embedded default data set: scikit-learn's bundled handwritten digits (no download).

1,797 real 8x8 scans of digits 0-9 (values 0..16), rendered as dark ink on white paper, upscaled into
the centre of an image of the model's input size and replicated to 3 channels.
"""

from __future__ import annotations

import cv2
import numpy as np

from edgevit.data.splits import ImageSplits, channel_stats, stratified_split

__all__ = ["load_digits_splits"]

DIGIT_FRACTION = 0.75  # the digit fills the central 75% of the image; the rest is blank paper


def load_digits_splits(img_size: int, *, seed: int = 0) -> ImageSplits:
    from sklearn.datasets import load_digits

    digits = load_digits()
    ink = digits.images.astype(np.float32) / 16.0                     # (N, 8, 8) in 0..1
    paper = (255.0 * (1.0 - ink)).astype(np.float32)                   # dark ink on white paper
    inner = int(round(img_size * DIGIT_FRACTION))
    pad = (img_size - inner) // 2
    up = np.full((len(paper), img_size, img_size), 255.0, dtype=np.float32)
    for i, p in enumerate(paper):
        up[i, pad:pad + inner, pad:pad + inner] = cv2.resize(p, (inner, inner), interpolation=cv2.INTER_CUBIC)
    images = np.repeat(np.clip(up, 0, 255).round().astype(np.uint8)[..., None], 3, axis=-1)
    labels = digits.target.astype(np.int64)
    train, val, test = stratified_split(labels, seed)
    mean, std = channel_stats(images[train])
    return ImageSplits(
        name="digits", class_names=tuple(str(i) for i in range(10)),
        train_x=images[train], train_y=labels[train], val_x=images[val], val_y=labels[val],
        test_x=images[test], test_y=labels[test], split_seed=seed, mean=mean, std=std,
    )
