"""Where model outputs land in the camera frame (numpy + OpenCV).

- The whole-frame model sees the frame through its input geometry (contract.images: center_crop, letterbox
  or stretch, from its card): a `Placement` says where that input lies in a frame of a given size, and maps
  normalized model-input points (`points`) and masks (`mask`) back to frame pixels, through the inverse of
  the transform that made the input. `from_model_input` is its point mapping (default: the centred square).
- A second-stage model (landmarks) sees a rotated crop: a `Roi` (centre, size in frame pixels,
  rotation in radians). `roi_from_detection` builds one from a detection the way MediaPipe's trackers
  do (square around the box, scaled up, turned so the line between two keypoints lies at a target
  angle); `roi_from_points` the next frame's ROI from landmarks (tracking); `crop_matrix` is the
  affine transform frame -> crop; `roi_to_frame` maps normalized crop
  points back to frame pixels.
- Segmentation: `mask_to_frame` puts a model-input mask back into a frame-sized mask (outside what the
  model saw: 0).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

__all__ = ["Roi", "Placement", "from_model_input", "roi_from_detection", "roi_from_points", "crop_matrix",
           "roi_to_frame", "mask_to_frame"]


@dataclass(frozen=True)
class Roi:
    x: float          # centre, frame pixels
    y: float
    width: float      # frame pixels, before rotation
    height: float
    rotation: float   # radians, clockwise in the image as shown (MediaPipe's convention)


@dataclass(frozen=True)
class Placement:
    """Where a whole-frame model's input lies in a frame of width x height: the frame rectangle it covers
    (`region`: x0, y0, width, height in frame pixels; a letterbox's reaches past the frame) and the policy
    that sampled it (contract.images)."""
    width: int
    height: int
    region: tuple
    policy: dict

    @classmethod
    def of(cls, policy: dict | None, frame_w: int, frame_h: int, model_w: int, model_h: int) -> Placement:
        from contract.images import check_resize_policy, model_region

        policy = check_resize_policy(policy)
        return cls(frame_w, frame_h, model_region(policy, frame_w, frame_h, model_w, model_h), policy)

    def points(self, points: np.ndarray) -> np.ndarray:
        """(..., 2) points normalized to the model input -> frame pixels."""
        from contract.images import to_frame

        return to_frame(points, self.region)

    def mask(self, mask: np.ndarray) -> np.ndarray:
        """(h, w) float mask over the model input (any resolution) -> (height, width) float32 frame mask: the
        input's own transform, inverted (bilinear, the mask's edge repeated up to the region's edge), 0 on
        frame pixels the model did not see."""
        import cv2

        from contract.images import frame_to_model_matrix

        mask = np.asarray(mask, np.float32)
        m = frame_to_model_matrix(self.policy, self.region, mask.shape[1], mask.shape[0])
        out = cv2.warpAffine(mask, m, (self.width, self.height), flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
                             borderMode=cv2.BORDER_REPLICATE)
        x0, y0, w, h = self.region
        c = 0.5 if self.policy["pixel_centers"] == "half_pixel" else 0.0   # where pixel i lies in region units
        xs, ys = np.arange(self.width) + c, np.arange(self.height) + c
        seen = ((ys >= y0) & (ys <= y0 + h))[:, None] & ((xs >= x0) & (xs <= x0 + w))[None, :]
        return np.where(seen, out, np.float32(0.0))


def from_model_input(points: np.ndarray, frame_w: int, frame_h: int, region: tuple | None = None) -> np.ndarray:
    """(..., 2) points normalized to the model input -> frame pixels; `region` is the Placement's (default:
    the centred square of center_crop)."""
    from contract.images import model_region, to_frame

    return to_frame(points, region or model_region(None, frame_w, frame_h, 1, 1))


def roi_from_detection(box: np.ndarray, keypoints: np.ndarray, frame_w: int, frame_h: int, *, scale: float = 1.5,
                       rotation_keypoints: tuple[int, int] = (0, 1), target_angle: float = 0.0,
                       shift_y: float = 0.0, region: tuple | None = None) -> Roi:
    """A square ROI around a detection (box and keypoints normalized to the model input), as MediaPipe's
    DetectionsToRects + RectTransformation do it: rotated so keypoints[a] -> keypoints[b] points at
    `target_angle` (radians; 0: to the right), centre shifted by `shift_y` x the box's height along the
    ROI's own vertical, side = the box's longer side (frame pixels) x `scale`. `region`: where the detector's
    input lies in the frame (its Placement's; default the centred square)."""
    corners = from_model_input(np.asarray(box, np.float32).reshape(2, 2), frame_w, frame_h, region)
    (x0, y0), (x1, y1) = corners
    a, b = from_model_input(np.asarray(keypoints, np.float32)[list(rotation_keypoints)], frame_w, frame_h, region)
    return _transformed((x0 + x1) / 2, (y0 + y1) / 2, x1 - x0, y1 - y0, _rotation(a, b, target_angle), scale, shift_y)


def roi_from_points(points: np.ndarray, *, rotation_points: tuple[int, int], target_angle: float = 0.0,
                    scale: float = 1.5, shift_y: float = 0.0, axis_aligned: bool = False) -> Roi:
    """The next frame's ROI from landmarks in frame pixels (tracking): rotated so points[a] -> points[b]
    points at `target_angle`, around the points' extent measured along the rotated axes (MediaPipe's
    HandLandmarksToRectCalculator), or with `axis_aligned` along the frame's axes (the box of
    LandmarksToDetectionCalculator that face_landmark_landmarks_to_roi.pbtxt turns into the face's ROI), then
    shifted and scaled like `roi_from_detection`."""
    pts = np.asarray(points, np.float64)[:, :2]
    rotation = _rotation(pts[rotation_points[0]], pts[rotation_points[1]], target_angle)
    if axis_aligned:
        (x0, y0), (x1, y1) = pts.min(0), pts.max(0)
        return _transformed((x0 + x1) / 2, (y0 + y1) / 2, x1 - x0, y1 - y0, rotation, scale, shift_y)
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


def crop_matrix(roi: Roi, out_w: int, out_h: int, *, half_pixel: bool = False) -> np.ndarray:
    """2x3 affine for cv2.warpAffine(frame, M, (out_w, out_h)): frame pixels -> crop pixels. The ROI's corners
    land on the crop's corners (MediaPipe's ImageToTensorCalculator: crop pixel i samples i x step from the
    corner); `half_pixel`: pixel centres aligned instead (crop pixel i samples (i + 0.5) x step - 0.5)."""
    src = roi_to_frame(np.array([[0, 0], [1, 0], [0, 1]], np.float32), roi)
    dst = np.array([[0, 0], [out_w, 0], [0, out_h]], np.float32)
    import cv2

    m = cv2.getAffineTransform(src, dst)
    if half_pixel:
        m[:, 2] += m[:, :2] @ np.array([0.5, 0.5]) - 0.5
    return m


def mask_to_frame(mask: np.ndarray, frame_w: int, frame_h: int, placement: Placement | None = None) -> np.ndarray:
    """(h, w) float mask over the model input -> (frame_h, frame_w) float32 mask (0 where the model saw no
    frame); `placement`: the model's (default: the centred square of center_crop)."""
    place = placement or Placement.of(None, frame_w, frame_h, *np.asarray(mask).shape[1::-1])
    return place.mask(mask)
