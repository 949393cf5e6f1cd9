"""Where model outputs land in the camera frame (numpy + OpenCV).

- The whole-frame model sees the frame through the resize policy (contract.images): the centred
  square of side min(H, W), resized. `from_model_input` maps normalized model-input points back.
- A second-stage model (landmarks) sees a rotated crop: a `Roi` (centre, size in frame pixels,
  rotation in radians). `roi_from_detection` builds one from a detection the way MediaPipe's trackers
  do (square around the box, scaled up, turned so the line between two keypoints lies at a target
  angle); `roi_from_points` the next frame's ROI from landmarks (tracking); `crop_matrix` is the
  affine transform frame -> crop; `roi_to_frame` maps normalized crop
  points back to frame pixels.
- Segmentation: `mask_to_frame` resizes a model-input mask to the centred square and places it in a
  frame-sized mask (outside the square: 0).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

__all__ = ["Roi", "from_model_input", "roi_from_detection", "roi_from_points", "crop_matrix", "roi_to_frame",
           "mask_to_frame"]


@dataclass(frozen=True)
class Roi:
    x: float          # centre, frame pixels
    y: float
    width: float      # frame pixels, before rotation
    height: float
    rotation: float   # radians, clockwise in the image as shown (MediaPipe's convention)


def _square(frame_w: int, frame_h: int) -> tuple[float, float, float]:
    side = min(frame_w, frame_h)
    return (frame_w - side) // 2, (frame_h - side) // 2, side


def from_model_input(points: np.ndarray, frame_w: int, frame_h: int) -> np.ndarray:
    """(..., 2) points normalized to the model input (the centred square) -> frame pixels."""
    x0, y0, side = _square(frame_w, frame_h)
    return np.asarray(points, np.float32) * side + np.array([x0, y0], np.float32)


def roi_from_detection(box: np.ndarray, keypoints: np.ndarray, frame_w: int, frame_h: int, *, scale: float = 1.5,
                       rotation_keypoints: tuple[int, int] = (0, 1), target_angle: float = 0.0,
                       shift_y: float = 0.0) -> Roi:
    """A square ROI around a detection (box and keypoints normalized to the model input), as MediaPipe's
    DetectionsToRects + RectTransformation do it: rotated so keypoints[a] -> keypoints[b] points at
    `target_angle` (radians; 0: to the right), centre shifted by `shift_y` x the box's height along the
    ROI's own vertical, side = the box's longer side (frame pixels) x `scale`."""
    corners = from_model_input(np.asarray(box, np.float32).reshape(2, 2), frame_w, frame_h)
    (x0, y0), (x1, y1) = corners
    a, b = from_model_input(np.asarray(keypoints, np.float32)[list(rotation_keypoints)], frame_w, frame_h)
    return _transformed((x0 + x1) / 2, (y0 + y1) / 2, x1 - x0, y1 - y0, _rotation(a, b, target_angle), scale, shift_y)


def roi_from_points(points: np.ndarray, *, rotation_points: tuple[int, int], target_angle: float = 0.0,
                    scale: float = 1.5, shift_y: float = 0.0) -> Roi:
    """The next frame's ROI from landmarks in frame pixels (tracking): rotated so points[a] -> points[b]
    points at `target_angle`, around the points' extent measured along the rotated axes, then shifted and
    scaled like `roi_from_detection`."""
    pts = np.asarray(points, np.float64)[:, :2]
    rotation = _rotation(pts[rotation_points[0]], pts[rotation_points[1]], target_angle)
    ux, uy = _axes(Roi(0, 0, 0, 0, rotation))
    u, v = pts @ ux, pts @ uy
    cu, cv = (u.min() + u.max()) / 2, (v.min() + v.max()) / 2
    centre = cu * ux + cv * uy
    return _transformed(centre[0], centre[1], u.max() - u.min(), v.max() - v.min(), rotation, scale, shift_y)


def _rotation(a, b, target_angle: float) -> float:
    return _normalize(target_angle - math.atan2(-(b[1] - a[1]), b[0] - a[0]))


def _transformed(cx, cy, width, height, rotation, scale, shift_y) -> Roi:
    ux, uy = _axes(Roi(0, 0, 0, 0, rotation))
    side = max(width, height) * scale
    cx, cy = np.array([cx, cy]) + shift_y * height * uy
    return Roi(float(cx), float(cy), float(side), float(side), float(rotation))


def _normalize(angle: float) -> float:
    return angle - 2 * math.pi * math.floor((angle + math.pi) / (2 * math.pi))


def _axes(roi: Roi) -> tuple[np.ndarray, np.ndarray]:
    """The crop's x and y unit axes in frame pixels (y down; the crop is turned clockwise by rotation)."""
    c, s = math.cos(roi.rotation), math.sin(roi.rotation)
    return np.array([c, s]), np.array([-s, c])


def roi_to_frame(points: np.ndarray, roi: Roi) -> np.ndarray:
    """(..., 2) points normalized to the crop (0..1) -> frame pixels."""
    ux, uy = _axes(roi)
    p = np.asarray(points, np.float32) - 0.5
    return (np.array([roi.x, roi.y]) + p[..., :1] * roi.width * ux + p[..., 1:2] * roi.height * uy).astype(np.float32)


def crop_matrix(roi: Roi, out_w: int, out_h: int) -> np.ndarray:
    """2x3 affine for cv2.warpAffine(frame, M, (out_w, out_h)): frame pixels -> crop pixels."""
    src = roi_to_frame(np.array([[0, 0], [1, 0], [0, 1]], np.float32), roi)
    dst = np.array([[0, 0], [out_w, 0], [0, out_h]], np.float32)
    import cv2

    return cv2.getAffineTransform(src, dst)


def mask_to_frame(mask: np.ndarray, frame_w: int, frame_h: int) -> np.ndarray:
    """(h, w) float mask over the model input -> (frame_h, frame_w) float32 mask (0 outside the square)."""
    import cv2

    x0, y0, side = _square(frame_w, frame_h)
    out = np.zeros((frame_h, frame_w), np.float32)
    out[y0:y0 + side, x0:x0 + side] = cv2.resize(np.asarray(mask, np.float32), (side, side),
                                                 interpolation=cv2.INTER_LINEAR)
    return out
