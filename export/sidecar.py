"""model.json, the sidecar beside every .tflite: the only thing device_sim reads about a model.

Schema "edgevit.model/1":
  name, format, file, sha256, size_bytes, labels,
  input:  name, shape (NHWC), layout, dtype, quantization {scale, zero_point}, color, value_range,
          resize {crop, interpolation_down, interpolation_up}, normalization (what is folded inside)
  output: name, shape, dtype, quantization, softmax_applied
  source: checkpoint, checkpoint_sha256, model_spec, dataset
  toolchain: package versions; fidelity: this artifact's numbers (see export.validate)
"""

from __future__ import annotations

import hashlib
import json
import platform
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path

import numpy as np

from export.litert import Interpreter

__all__ = ["SCHEMA", "sha256_file", "toolchain_versions", "build_sidecar", "write_json"]

SCHEMA = "edgevit.model/1"
RESIZE = {"crop": "center_square", "interpolation_down": "area", "interpolation_up": "linear"}
_PACKAGES = ("torch", "onnx", "onnxscript", "onnxruntime", "onnx2tf", "tensorflow", "ai-edge-litert", "numpy")


def sha256_file(path: Path) -> str:
    with open(path, "rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()


def toolchain_versions() -> dict[str, str]:
    versions = {"python": platform.python_version()}
    for name in _PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = "not installed"
    return versions


def _tensor_spec(detail: dict) -> dict:
    scale, zero = detail["quantization"]
    dtype = np.dtype(detail["dtype"]).name
    quant = {"scale": float(scale), "zero_point": int(zero)} if dtype in ("uint8", "int8") else None
    return {"name": detail["name"], "shape": [int(v) for v in detail["shape"]], "dtype": dtype, "quantization": quant}


def build_sidecar(*, name: str, fmt: str, tflite: Path, labels: list[str], mean, std, source: dict,
                  fidelity: dict, toolchain: dict) -> dict:
    interp = Interpreter(model_path=str(tflite))
    inp, out = interp.get_input_details()[0], interp.get_output_details()[0]
    input_spec = {**_tensor_spec(inp), "layout": "NHWC", "color": "RGB", "value_range": [0, 255], "resize": RESIZE,
                  "normalization": {"folded": mean is not None, "mean": list(mean) if mean is not None else None,
                                    "std": list(std) if std is not None else None,
                                    "note": "feed raw pixels; (x/255 - mean)/std happens inside the model"}}
    return {
        "schema": SCHEMA, "name": name, "format": fmt, "file": tflite.name, "sha256": sha256_file(tflite),
        "size_bytes": tflite.stat().st_size, "labels": list(labels),
        "input": input_spec,
        "output": {**_tensor_spec(out), "softmax_applied": False, "meaning": "logits"},
        "source": source, "toolchain": toolchain, "fidelity": fidelity,
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
    }


def write_json(path: Path, obj: dict) -> None:
    path.write_text(json.dumps(obj, indent=2, default=_jsonable) + "\n")


def _jsonable(o):
    if isinstance(o, np.generic):
        return o.item()
    if isinstance(o, Path):
        return str(o)
    raise TypeError(f"not JSON serializable: {type(o).__name__}")
