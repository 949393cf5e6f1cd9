"""Input quantization and output dequantization, exactly as the device runs them. export's fidelity
check and device_sim's frame loop both call these, so the numbers export reports come from the code
path the device runs.

A tensor spec is the card's `input` / `output` object: {"dtype": "uint8"|"int8"|"float32"|"float16",
"quantization": {"scale": s, "zero_point": z} or null}. An input spec may also say what values the model
expects for pixels 0..255: "value_range" [lo, hi] (linear map), or "normalization" {"folded": false,
"mean": [..], "std": [..]} in 0..1 units ((x/255 - mean) / std, timm's convention). An export's card
says [0, 255] and "folded": true: the normalization is inside the model and pixels go in as they are.
"""

from __future__ import annotations

import numpy as np

__all__ = ["quantize_input", "dequantize_output", "quant_params", "model_values"]

RAW_RANGE = [0, 255]


def quant_params(spec: dict) -> tuple[float, int] | None:
    q = spec.get("quantization")
    return (float(q["scale"]), int(q["zero_point"])) if q else None


def model_values(images: np.ndarray, spec: dict) -> np.ndarray:
    """uint8 pixels -> the values the model expects (the pixels themselves when it takes 0..255)."""
    norm = spec.get("normalization") or {}
    if not norm.get("folded", True) and norm.get("mean") is not None:
        mean = np.asarray(norm["mean"], np.float32)
        std = np.asarray(norm["std"], np.float32)
        return (images.astype(np.float32) / 255.0 - mean) / std
    lo, hi = spec.get("value_range", RAW_RANGE)
    if [lo, hi] == RAW_RANGE:
        return images
    return images.astype(np.float32) * np.float32((hi - lo) / 255.0) + np.float32(lo)


def quantize_input(images: np.ndarray, spec: dict) -> np.ndarray:
    """uint8 RGB pixels (N, H, W, 3), values 0..255 -> the tensor the model takes (values, dtype,
    quantization). A uint8 input with scale 1 and zero point 0 takes the pixels as they are (no copy)."""
    images = model_values(images, spec)
    dtype = np.dtype(spec["dtype"])
    quant = quant_params(spec)
    if dtype.kind in "iu" and quant is not None:
        if dtype == np.uint8 and quant == (1.0, 0) and images.dtype == np.uint8:
            return images
        info = np.iinfo(dtype)
        q = np.round(images.astype(np.float32) / quant[0] + quant[1])
        return np.clip(q, info.min, info.max).astype(dtype)
    return images.astype(dtype)


def dequantize_output(raw: np.ndarray, spec: dict) -> np.ndarray:
    """The model's raw output -> float32 in real units (logits, scores, coordinates)."""
    quant = quant_params(spec)
    if quant is not None and np.dtype(spec["dtype"]).kind in "iu":
        return (raw.astype(np.float32) - quant[1]) * quant[0]
    return raw.astype(np.float32)
