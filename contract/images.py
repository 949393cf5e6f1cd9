"""The one resize policy: center-crop to a square, then resize to the model's input size (area when
shrinking, linear when enlarging). Training data (edgevit.data), the export's fidelity check and
the device's camera frames all go through `resize_to_model`, so every stage sees the same pixels.
The policy is written into the model card (`input.resize`) and read back from it.

OpenCV is imported inside the functions that resize: the contract itself needs numpy only.
"""

from __future__ import annotations

import numpy as np

from contract.errors import UserError

__all__ = ["RESIZE_POLICY", "IMAGE_SUFFIXES", "center_square", "resize_to_model", "check_resize_policy"]

RESIZE_POLICY = {"crop": "center_square", "interpolation_down": "area", "interpolation_up": "linear"}
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".webp")
_CROPS = ("center_square", "none")
_INTERPOLATIONS = ("area", "linear", "nearest", "cubic")


def check_resize_policy(policy: dict) -> dict:
    """A resize policy as written in a model card; raises UserError naming the bad field."""
    if not isinstance(policy, dict):
        raise UserError(f"input.resize must be an object, got {policy!r}")
    full = {**RESIZE_POLICY, **policy}
    if full["crop"] not in _CROPS:
        raise UserError(f"input.resize.crop {full['crop']!r} is not one of {', '.join(_CROPS)}")
    for key in ("interpolation_down", "interpolation_up"):
        if full[key] not in _INTERPOLATIONS:
            raise UserError(f"input.resize.{key} {full[key]!r} is not one of {', '.join(_INTERPOLATIONS)}")
    return full


def center_square(image: np.ndarray) -> np.ndarray:
    """The centered square of side min(H, W) (a view, no copy)."""
    h, w = image.shape[:2]
    side = min(h, w)
    y0, x0 = (h - side) // 2, (w - side) // 2
    return image[y0:y0 + side, x0:x0 + side]


def resize_to_model(image: np.ndarray, width: int, height: int | None = None,
                    policy: dict | None = None) -> np.ndarray:
    """(H, W, C) uint8 -> (height, width, C) per the policy; returns the input itself when nothing changes."""
    import cv2

    height = width if height is None else height
    policy = check_resize_policy(policy or RESIZE_POLICY)
    crop = center_square(image) if policy["crop"] == "center_square" else image
    if crop.shape[0] == height and crop.shape[1] == width:
        return np.ascontiguousarray(crop)
    shrinking = crop.shape[0] * crop.shape[1] > height * width
    name = policy["interpolation_down" if shrinking else "interpolation_up"]
    flag = {"area": cv2.INTER_AREA, "linear": cv2.INTER_LINEAR, "nearest": cv2.INTER_NEAREST,
            "cubic": cv2.INTER_CUBIC}[name]
    return cv2.resize(crop, (width, height), interpolation=flag)
