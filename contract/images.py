"""How a frame becomes a model's input, and how the model's coordinates go back to the frame: the input
geometry, a property of the model written in its card (`input.resize`) and read back from it. Training data
(edgevit.data), the export's fidelity check and the device's camera frames all go through `resize_to_model`,
so every stage sees the same pixels; `to_frame` and `frame_to_model_matrix` are its inverse (detections,
keypoints, masks back in frame pixels).

A policy is an object of these fields (a card without them, or with the older `crop` field, gets the
behaviour edgevit always had: `center_crop`, area when shrinking, linear when enlarging, half-pixel centres):
  policy          center_crop: the centred square of side min(H, W), resized (ImageNet classifiers; edgevit's own)
                  letterbox:   the whole frame fitted into the input keeping its aspect ratio, the rest padded
                               (MediaPipe's detectors: ImageToTensorCalculator with keep_aspect_ratio: true)
                  stretch:     the whole frame resized to the input, aspect ratio not kept
                               (MediaPipe's selfie segmentation: keep_aspect_ratio: false)
  interpolation_down / interpolation_up   area | linear | nearest | cubic (area: only for a plain resize)
  pixel_centers   half_pixel: input pixel i samples the region at (i + 0.5) * step - 0.5 (OpenCV's resize)
                  corner:     input pixel i samples the region at i * step from its corner (MediaPipe's
                              ImageToTensorConverterOpenCv: warpPerspective of the region's corners onto the
                              tensor's, mediapipe/calculators/tensor/image_to_tensor_converter_opencv.cc)
  border          constant | replicate: what lies outside the frame (letterbox padding, a crop past the edge)
  pad_value       0..255: the pixel value of a constant border (before the model's own value range)
The presets `letterbox` and `stretch` are MediaPipe's whole-frame input (linear, corner, constant 0: the
detector graphs' BORDER_ZERO). A crop stage (a rotated region around an earlier stage's find) warps the region
with its model's policy (`check_resize_policy(..., crop=True)`: the policy fits the region to the input's
aspect, `area` samples as linear); a model that names no policy gets `CROP_POLICY` there, edgevit's crop so
far (linear, corner, constant 0). MediaPipe's landmark graphs leave border_mode unset, which its
ImageToTensorCalculator reads as BORDER_REPLICATE (image_to_tensor_utils.cc, GetBorderMode): the built-in
pipelines say `border = "replicate"` for their landmark stages.

OpenCV is imported inside the functions that resize: the contract itself needs numpy only.
"""

from __future__ import annotations

import math

import numpy as np

from contract.errors import UserError

__all__ = ["RESIZE_POLICY", "RESIZE_CHOICES", "POLICIES", "CROP_POLICY", "IMAGE_SUFFIXES", "center_square",
           "resize_to_model", "check_resize_policy", "resize_preset", "model_region", "frame_to_model_matrix",
           "to_frame", "fit_region", "interpolation_flag", "border_args"]

POLICIES = ("center_crop", "letterbox", "stretch")
_INTERPOLATIONS = ("area", "linear", "nearest", "cubic")
_CENTERS = ("half_pixel", "corner")
_BORDERS = ("constant", "replicate")
_MEDIAPIPE = {"interpolation_down": "linear", "interpolation_up": "linear", "pixel_centers": "corner",
              "border": "constant", "pad_value": 0}
_PRESETS = {
    "center_crop": {"policy": "center_crop", "interpolation_down": "area", "interpolation_up": "linear",
                    "pixel_centers": "half_pixel", "border": "constant", "pad_value": 0},
    "letterbox": {"policy": "letterbox", **_MEDIAPIPE},
    "stretch": {"policy": "stretch", **_MEDIAPIPE},
}
RESIZE_POLICY = dict(_PRESETS["center_crop"])     # what export writes, and what a card without a policy means
CROP_POLICY = {"policy": "stretch", **_MEDIAPIPE}  # a crop stage whose model does not say (edgevit's crops so far)
_LEGACY_CROPS = {"center_square": "center_crop", "none": "stretch"}   # cards before the policy field
RESIZE_CHOICES = {"policy": POLICIES, "interpolation_down": _INTERPOLATIONS, "interpolation_up": _INTERPOLATIONS,
                  "pixel_centers": _CENTERS, "border": _BORDERS}   # the named fields' values (pad_value: 0..255)
_FIELDS = ("policy", "interpolation_down", "interpolation_up", "pixel_centers", "border", "pad_value", "crop")
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".webp")


def resize_preset(name: str) -> dict:
    """The full policy a name stands for (`--resize NAME`, a pipeline stage's `resize = "NAME"`)."""
    if name not in _PRESETS:
        raise UserError(f"resize {name!r} is not one of {', '.join(POLICIES)}")
    return dict(_PRESETS[name])


def _choice(full: dict, key: str, valid: tuple) -> None:
    if full[key] not in valid:
        raise UserError(f"input.resize.{key} {full[key]!r} is not one of {', '.join(valid)}")


def _base(given: dict, crop: bool) -> dict:
    """The preset a written policy starts from: its `policy`, the older `crop` field (edgevit's sampling
    whatever it cropped), or none (RESIZE_POLICY; a crop stage's CROP_POLICY, as crops always were)."""
    legacy = given.pop("crop", None)
    if legacy is not None and legacy not in _LEGACY_CROPS:
        raise UserError(f"input.resize.crop {legacy!r} is not one of {', '.join(_LEGACY_CROPS)}")
    name = given.get("policy")
    if name is not None and name not in _PRESETS:
        raise UserError(f"input.resize.policy {name!r} is not one of {', '.join(POLICIES)}")
    if legacy is not None and name not in (None, _LEGACY_CROPS[legacy]):
        raise UserError(f"input.resize.crop {legacy!r} contradicts input.resize.policy {name!r}; keep policy only")
    if crop and name is None:
        return dict(CROP_POLICY)
    if name is None or legacy is not None:
        return {**RESIZE_POLICY, "policy": _LEGACY_CROPS.get(legacy, "center_crop")}
    return dict(_PRESETS[name])


def check_resize_policy(policy: dict | None, *, crop: bool = False) -> dict:
    """A policy as written in a card (or a pipeline stage) -> every field filled in; raises UserError naming
    the bad field and the valid values. `crop`: the policy of a crop stage's model, which warps a rotated
    region: `area` (a resize's) samples as linear there."""
    if not isinstance(policy, (dict, type(None))):
        raise UserError(f"input.resize must be an object, got {policy!r}")
    given = dict(policy or {})
    unknown = [k for k in given if k not in _FIELDS]
    if unknown:
        raise UserError(f"input.resize.{unknown[0]} is not a field; valid: {', '.join(_FIELDS[:-1])}")
    full = {**_base(given, crop), **given}
    for key in ("interpolation_down", "interpolation_up"):
        _choice(full, key, _INTERPOLATIONS)
        if crop and full[key] == "area":
            full[key] = "linear"
    _choice(full, "pixel_centers", _CENTERS)
    _choice(full, "border", _BORDERS)
    pad = full["pad_value"]
    if isinstance(pad, bool) or not isinstance(pad, (int, float)) or not 0 <= pad <= 255:
        raise UserError(f"input.resize.pad_value {pad!r} is not a pixel value 0..255")
    if "area" in (full["interpolation_down"], full["interpolation_up"]) and (
            full["pixel_centers"] != "half_pixel" or full["policy"] == "letterbox"):
        raise UserError("input.resize: interpolation 'area' resizes pixels inside the frame (center_crop or "
                        "stretch with half_pixel centres); letterbox and corner sampling warp: use linear, "
                        "nearest or cubic")
    return full


def center_square(image: np.ndarray) -> np.ndarray:
    """The centered square of side min(H, W) (a view, no copy)."""
    h, w = image.shape[:2]
    side = min(h, w)
    y0, x0 = (h - side) // 2, (w - side) // 2
    return image[y0:y0 + side, x0:x0 + side]


def fit_region(policy: dict, width: float, height: float, out_w: int, out_h: int) -> tuple[float, float]:
    """The (width, height) of a region of `width` x `height` once fitted to the input's aspect ratio:
    center_crop takes its centred square (resized to any input shape, as edgevit always did), letterbox grows
    it (MediaPipe's PadRoi, image_to_tensor_utils.cc), stretch keeps it."""
    if policy["policy"] == "center_crop":
        side = min(width, height)
        return float(side), float(side)
    want, have = out_h / out_w, height / width
    if policy["policy"] == "stretch" or math.isclose(want, have):
        return float(width), float(height)
    if want > have:                       # a taller input than the region: pad above and below
        return float(width), float(width * want)
    return float(height / want), float(height)


def model_region(policy: dict, frame_w: int, frame_h: int, out_w: int, out_h: int) -> tuple[float, float, float, float]:
    """(x0, y0, width, height) of the frame rectangle, in frame pixels from the frame's corner, that the model
    input covers (a letterbox's extends past the frame). center_crop: edgevit's centred square, on whole
    pixels; letterbox: centred on the frame, as MediaPipe's (the whole image as ROI, then PadRoi)."""
    policy = check_resize_policy(policy)
    if policy["policy"] == "center_crop":
        side = min(frame_w, frame_h)
        return float((frame_w - side) // 2), float((frame_h - side) // 2), float(side), float(side)
    w, h = fit_region(policy, frame_w, frame_h, out_w, out_h)
    return (frame_w - w) / 2, (frame_h - h) / 2, w, h


def frame_to_model_matrix(policy: dict, region: tuple, out_w: int, out_h: int) -> np.ndarray:
    """2x3 affine: frame pixel coordinates (pixel centres at whole numbers, OpenCV's) -> model input pixels,
    for an axis-aligned region (x0, y0, width, height), by the policy's pixel_centers."""
    x0, y0, w, h = region
    sx, sy = out_w / w, out_h / h
    half = 0.5 if check_resize_policy(policy)["pixel_centers"] == "half_pixel" else 0.0
    return np.array([[sx, 0.0, (half - x0) * sx - half], [0.0, sy, (half - y0) * sy - half]], np.float64)


def to_frame(points: np.ndarray, region: tuple) -> np.ndarray:
    """(..., 2) points normalized to the model input (0..1 across it) -> frame pixels."""
    x0, y0, w, h = region
    return (np.asarray(points, np.float64) * np.array([w, h]) + np.array([x0, y0])).astype(np.float32)


_CV_FLAGS = {"area": "INTER_AREA", "linear": "INTER_LINEAR", "nearest": "INTER_NEAREST", "cubic": "INTER_CUBIC"}


def interpolation_flag(policy: dict, shrinking: bool) -> int:
    import cv2

    return getattr(cv2, _CV_FLAGS[policy["interpolation_down" if shrinking else "interpolation_up"]])


def border_args(policy: dict) -> dict:
    """cv2.warpAffine's borderMode / borderValue for the policy's border."""
    import cv2

    if policy["border"] == "replicate":
        return {"borderMode": cv2.BORDER_REPLICATE}
    return {"borderMode": cv2.BORDER_CONSTANT, "borderValue": (float(policy["pad_value"]),) * 4}


def resize_to_model(image: np.ndarray, width: int, height: int | None = None,
                    policy: dict | None = None) -> np.ndarray:
    """(H, W, C) uint8 -> (height, width, C) per the policy; returns the input itself when nothing changes."""
    import cv2

    height = width if height is None else height
    policy = check_resize_policy(policy)
    h, w = image.shape[:2]
    region = model_region(policy, w, h, width, height)
    x0, y0, rw, rh = region
    shrinking = rw * rh > width * height
    inside = x0 >= 0 and y0 >= 0 and x0 + rw <= w and y0 + rh <= h and all(float(v).is_integer() for v in region)
    if policy["pixel_centers"] == "half_pixel" and inside:     # a plain resize of pixels of the frame
        crop = image[int(y0):int(y0 + rh), int(x0):int(x0 + rw)]
        if crop.shape[0] == height and crop.shape[1] == width:
            return np.ascontiguousarray(crop)
        return cv2.resize(crop, (width, height), interpolation=interpolation_flag(policy, shrinking))
    return cv2.warpAffine(image, frame_to_model_matrix(policy, region, width, height), (width, height),
                          flags=interpolation_flag(policy, shrinking), **border_args(policy))
