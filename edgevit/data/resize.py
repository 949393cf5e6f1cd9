"""The one resize policy of edgevit: center-crop to a square, then resize to the model's size.

export writes this policy into model.json ("resize": {"crop": "center_square", ...}) and device_sim
applies it to camera frames from that description, so training and device see the same pixels.
"""

from __future__ import annotations

import cv2
import numpy as np

__all__ = ["RESIZE_POLICY", "center_square_resize"]

RESIZE_POLICY = {"crop": "center_square", "interpolation_down": "area", "interpolation_up": "linear"}


def center_square_resize(image: np.ndarray, size: int) -> np.ndarray:
    h, w = image.shape[:2]
    side = min(h, w)
    y0, x0 = (h - side) // 2, (w - side) // 2
    crop = image[y0:y0 + side, x0:x0 + side]
    if side == size:
        return np.ascontiguousarray(crop)
    interp = cv2.INTER_AREA if side > size else cv2.INTER_LINEAR
    return cv2.resize(crop, (size, size), interpolation=interp)
