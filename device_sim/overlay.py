"""Drawing a pipeline's results onto a frame for demo.mp4 (OpenCV): detection boxes and keypoints,
the rotated crops a landmark model saw (yellow when tracked from the previous frame, cyan when new),
its landmarks, and segmentation masks as a green tint."""

from __future__ import annotations

import cv2
import numpy as np

from device_sim.decode.geometry import mask_to_frame, roi_to_frame
from device_sim.model import MASK_THRESHOLD

__all__ = ["draw_view", "tint"]

_BOX, _KEYPOINT, _POINT = (0, 200, 0), (0, 0, 255), (255, 255, 255)
_TRACKED, _NEW = (0, 220, 255), (255, 200, 0)


def tint(frame: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """`mask` (h, w) over the model input (the centred square): green where it exceeds the threshold."""
    full = mask_to_frame(mask, frame.shape[1], frame.shape[0])
    green = np.zeros_like(frame)
    green[..., 1] = 255
    alpha = (0.45 * (full > MASK_THRESHOLD))[..., None]
    return (frame * (1 - alpha) + green * alpha).astype(np.uint8)


def draw_view(frame: np.ndarray, view) -> np.ndarray:
    out = frame.copy()
    for mask in view.masks.values():
        out = tint(out, mask)
    for found in view.boxes.values():
        for box, keypoints, score in found:
            x0, y0, x1, y1 = (int(round(v)) for v in box)
            cv2.rectangle(out, (x0, y0), (x1, y1), _BOX, 2)
            cv2.putText(out, f"{100 * score:.0f}%", (x0, max(y0 - 4, 12)), cv2.FONT_HERSHEY_SIMPLEX, 0.45, _BOX, 1,
                        cv2.LINE_AA)
            for x, y in keypoints:
                cv2.circle(out, (int(round(x)), int(round(y))), 3, _KEYPOINT, -1)
    for sets in view.landmarks.values():
        for lm in sets:
            corners = roi_to_frame(np.array([[0, 0], [1, 0], [1, 1], [0, 1]], np.float32), lm.roi)
            cv2.polylines(out, [np.round(corners).astype(np.int32)], True, _TRACKED if lm.tracked else _NEW, 1,
                          cv2.LINE_AA)
            radius = 1 if len(lm.points) > 100 else 3
            for x, y in lm.points:
                cv2.circle(out, (int(round(x)), int(round(y))), radius, _POINT, -1)
    return out
