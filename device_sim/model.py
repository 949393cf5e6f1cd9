"""A deployed model as the device sees it: model.json (the contract written by export) + model.tflite.

`DeployedModel.load(path)` accepts the artifact folder, its model.json or its model.tflite; it
checks the sidecar, verifies the file's sha256, builds the interpreter and prepares the
pre/post-processing the sidecar describes (center-square crop, resize, BGR->RGB, dtype/quantization;
dequantize and softmax on the way out).
"""

from __future__ import annotations

import hashlib
import json
import time
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from device_sim.errors import SimError
from device_sim.quiet import quiet_stderr
from device_sim.runtime import Interpreter

__all__ = ["DeployedModel", "Prediction", "resolve_sidecar", "sidecar_candidate"]

SCHEMA = "edgevit.model/1"
_REQUIRED = {"schema": str, "file": str, "sha256": str, "labels": list, "input": dict, "output": dict}


@dataclass(frozen=True)
class Prediction:
    label: int
    confidence: float
    probs: np.ndarray


def sidecar_candidate(path: str | Path) -> Path:
    """Folder, model.json or model.tflite -> where its model.json would be (it may not exist)."""
    path = Path(path)
    if path.is_dir():
        return path / "model.json"
    return path.with_name("model.json") if path.suffix == ".tflite" else path


def resolve_sidecar(path: str | Path) -> Path:
    """Folder, model.json or model.tflite -> the model.json path, which must exist."""
    candidate = sidecar_candidate(path)
    if not candidate.is_file():
        raise SimError(f"model.json not found at {candidate}; point --model at an export folder "
                       "(e.g. artifacts/edgevit_xs-digits/int8) made by `edgevit export`")
    return candidate


def _sha256(path: Path) -> str:
    with open(path, "rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()


class DeployedModel:
    def __init__(self, sidecar: dict, tflite: Path, *, threads: int):
        self.sidecar, self.tflite, self.threads = sidecar, tflite, threads
        self.labels: list[str] = [str(v) for v in sidecar["labels"]]
        inp, out = sidecar["input"], sidecar["output"]
        _, self.height, self.width, _ = inp["shape"]
        self.input_dtype = np.dtype(inp["dtype"])
        self.in_quant = inp.get("quantization") or None
        self.out_quant = output_quant = out.get("quantization") or None
        self.out_dequant = (output_quant["scale"], output_quant["zero_point"]) if output_quant else None
        self.softmax_applied = bool(out.get("softmax_applied", False))
        self.rgb = inp.get("color", "RGB").upper() == "RGB"
        t0 = time.perf_counter()
        try:
            with quiet_stderr():   # the runtime announces its delegate on stderr; errors still raise
                self.interpreter = Interpreter(model_path=str(tflite), num_threads=threads)
                self.interpreter.allocate_tensors()
        except (ValueError, RuntimeError) as e:
            raise SimError(f"the runtime cannot load {tflite}: {str(e).splitlines()[0][:200]}") from None
        self.init_seconds = time.perf_counter() - t0
        self._in = self.interpreter.get_input_details()[0]
        self._out = self.interpreter.get_output_details()[0]
        if list(self._in["shape"]) != list(inp["shape"]) or np.dtype(self._in["dtype"]) != self.input_dtype:
            actual = f"{list(self._in['shape'])} {np.dtype(self._in['dtype']).name}"
            raise SimError(f"{tflite} takes {actual}, but model.json says {inp['shape']} {inp['dtype']}: "
                           "the sidecar does not belong to this model")

    @classmethod
    def load(cls, path: str | Path, *, threads: int = 1) -> DeployedModel:
        if Interpreter is None:
            raise SimError("no TFLite runtime: pip install ai-edge-litert (or tflite-runtime)")
        if not isinstance(threads, int) or threads < 1:
            raise SimError(f"threads must be a whole number >= 1, got {threads!r}")
        sidecar_path = resolve_sidecar(path)
        try:
            sidecar = json.loads(sidecar_path.read_text())
        except (json.JSONDecodeError, UnicodeDecodeError) as e:
            raise SimError(f"{sidecar_path} is not valid JSON ({e}); re-run `edgevit export`") from None
        _check_sidecar(sidecar, sidecar_path)
        tflite = sidecar_path.parent / sidecar["file"]
        if not tflite.is_file():
            raise SimError(f"{tflite} is missing (named by {sidecar_path}); re-run `edgevit export`")
        if _sha256(tflite) != sidecar["sha256"]:
            raise SimError(f"{tflite} does not match the sha256 in {sidecar_path}: the file is corrupt or was "
                           "replaced; re-run `edgevit export`")
        return cls(sidecar, tflite, threads=threads)

    @property
    def size_mb(self) -> float:
        return self.tflite.stat().st_size / 1e6

    # -- the per-frame work ---------------------------------------------------------------------
    def preprocess(self, frame_bgr: np.ndarray) -> np.ndarray:
        """Camera frame (H, W, 3) uint8 BGR -> the model's input tensor, as model.json says."""
        h, w = frame_bgr.shape[:2]
        side = min(h, w)
        y0, x0 = (h - side) // 2, (w - side) // 2
        crop = frame_bgr[y0:y0 + side, x0:x0 + side]
        interp = cv2.INTER_AREA if side > self.height else cv2.INTER_LINEAR
        image = cv2.resize(crop, (self.width, self.height), interpolation=interp)
        if self.rgb:
            image = cv2.cvtColor(image, cv2.COLOR_BGR2RGB)
        return self.to_input(image[None])

    def to_input(self, images_rgb: np.ndarray) -> np.ndarray:
        """uint8 RGB (1, H, W, 3) at the model size -> the dtype and quantization model.json gives."""
        quant = (self.in_quant["scale"], self.in_quant["zero_point"]) if self.in_quant else None
        if self.input_dtype == np.uint8 and quant == (1.0, 0):
            return images_rgb
        if self.input_dtype in (np.uint8, np.int8) and self.in_quant:
            info = np.iinfo(self.input_dtype)
            q = np.round(images_rgb / self.in_quant["scale"] + self.in_quant["zero_point"])
            return np.clip(q, info.min, info.max).astype(self.input_dtype)
        return images_rgb.astype(self.input_dtype)

    def invoke(self, x: np.ndarray) -> np.ndarray:
        self.interpreter.set_tensor(self._in["index"], x)
        self.interpreter.invoke()
        return self.interpreter.get_tensor(self._out["index"])

    def warm_reference(self, x: np.ndarray, runs: int = 100) -> float:
        """Median seconds of `runs` back-to-back invokes after a warm-up: the host speed the
        simulator's slowdown is applied to."""
        for _ in range(5):
            self.invoke(x)
        times = []
        for _ in range(runs):
            t0 = time.perf_counter()
            self.invoke(x)
            times.append(time.perf_counter() - t0)
        return float(np.median(times))

    def postprocess(self, raw: np.ndarray) -> Prediction:
        logits = raw[0].astype(np.float32)
        if self.out_dequant:
            logits = (logits - self.out_dequant[1]) * self.out_dequant[0]
        if self.softmax_applied:
            probs = logits
        else:
            e = np.exp(logits - logits.max())
            probs = e / e.sum()
        top = int(probs.argmax())
        return Prediction(top, float(probs[top]), probs)


def _check_sidecar(side: dict, path: Path) -> None:
    if not isinstance(side, dict):
        raise SimError(f"{path} is not an edgevit model.json (expected an object)")
    for key, kind in _REQUIRED.items():
        if not isinstance(side.get(key), kind):
            raise SimError(f"{path} is malformed: field '{key}' is missing or not a {kind.__name__}; "
                           "re-run `edgevit export`")
    if side["schema"] != SCHEMA:
        raise SimError(f"{path} has schema {side['schema']!r}; this device_sim reads {SCHEMA!r}")
    inp = side["input"]
    shape = inp.get("shape")
    if not (isinstance(shape, list) and len(shape) == 4 and shape[0] == 1 and shape[3] == 3
            and all(isinstance(v, int) and v > 0 for v in shape)):
        raise SimError(f"{path} is malformed: input.shape must be [1, H, W, 3], got {shape!r}")
    if inp.get("dtype") not in ("uint8", "int8", "float32", "float16"):
        raise SimError(f"{path} is malformed: input.dtype {inp.get('dtype')!r} is not uint8/int8/float32")
    if inp.get("layout", "NHWC") != "NHWC":
        raise SimError(f"{path}: only NHWC inputs are supported, got {inp.get('layout')!r}")
    if not side["labels"]:
        raise SimError(f"{path} is malformed: labels is empty")
