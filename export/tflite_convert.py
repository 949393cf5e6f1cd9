"""ONNX -> TFLite. onnx2tf turns the NCHW ONNX graph into an NHWC TensorFlow SavedModel (and writes
fp32/fp16 .tflite); full int8 comes from TFLiteConverter on that SavedModel with our own
representative data.

Why this route (docs/TOOLCHAIN.md): onnx2tf's own int8 path broke on attention MatMuls with
custom calibration data and took minutes; TFLiteConverter on its SavedModel takes seconds and gives
the same ops. onnx2tf needs two things offline: `onnxsim` on PATH (it runs it as a subprocess) and
its validation sample file in the working directory (else it downloads one); both are provided here,
the sample built from our own calibration images. The TensorFlow work runs in export.tf_worker, a
fresh process per conversion (its docstring says why).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

import cv2
import numpy as np

from contract.errors import UserError
from export.quiet import last_error_line
from export.tf_worker import ONNX2TF_SAMPLE

__all__ = ["onnx_to_tflite", "saved_model_to_int8", "check_builtin_ops", "NotConvertibleError"]

class NotConvertibleError(UserError):
    """The model contains an op the light TFLite runtimes cannot run (Flex/custom or float in int8)."""


def _write_onnx2tf_sample(work: Path, images: np.ndarray) -> None:
    """onnx2tf validates its layout choices on 20 images of 128x128 in 0..1 (denormalized to 0..255
    by the worker); give it ours instead of letting it download its own."""
    picks = [images[i % len(images)] for i in range(20)]
    sample = np.stack([cv2.resize(im, (128, 128), interpolation=cv2.INTER_LINEAR) for im in picks])
    np.save(work / ONNX2TF_SAMPLE, (sample.astype(np.float32) / 255.0))


def _run_worker(request: dict, work: Path, log: Path) -> dict:
    """Runs export.tf_worker in a fresh process (see its docstring for why); its output goes to `log`."""
    work.mkdir(parents=True, exist_ok=True)
    req_path, res_path = work / f"{request['task']}-request.json", work / f"{request['task']}-result.json"
    req_path.write_text(json.dumps(request))
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL=os.environ.get("TF_CPP_MIN_LOG_LEVEL", "2"))
    bin_dir = str(Path(sys.executable).parent)   # onnx2tf runs `onnxsim` as a subprocess: keep the venv on PATH
    if bin_dir not in env.get("PATH", "").split(os.pathsep):
        env["PATH"] = bin_dir + os.pathsep + env.get("PATH", "")
    with open(log, "ab") as out:
        subprocess.run([sys.executable, "-m", "export.tf_worker", str(req_path), str(res_path)], stdout=out,
                       stderr=subprocess.STDOUT, env=env, cwd=work)
    if not res_path.is_file():
        raise ValueError(f"the {request['task']} converter process died: {last_error_line(log)} (log: {log})")
    result = json.loads(res_path.read_text())
    if result["ok"]:
        return result
    if result["kind"] == "not_convertible":
        raise _not_convertible(result["message"])
    if result["kind"] == "missing":
        raise UserError(f"the {request['task']} converter needs the Python package {result['message']}, which is not "
                        "installed; run `make setup` (it installs onnx2tf 1.29.24 and edgevit's export extra)")
    detail = result["message"].splitlines()[0][:200]
    if request["task"] == "onnx2tf":
        detail = f"{detail}; {last_error_line(log)}" if "exit" in detail else detail
    raise ValueError(f"{request['task']} failed: {detail} (log: {log})")


def onnx_to_tflite(onnx_path: Path, work: Path, sample_images: np.ndarray, log: Path) -> dict[str, Path]:
    """Returns {"saved_model": dir, "fp32": .tflite, "fp16": .tflite} inside `work`. onnx2tf gets a copy:
    it simplifies its input file in place (dropping the exporter's node metadata, which the int8 debugger
    reads for module names)."""
    work.mkdir(parents=True, exist_ok=True)
    _write_onnx2tf_sample(work, sample_images)
    src = work / "input" / onnx_path.name
    src.parent.mkdir(exist_ok=True)
    shutil.copy2(onnx_path, src)
    result = _run_worker({"task": "onnx2tf", "onnx": str(src.resolve()), "work": str(work.resolve())}, work, log)
    paths = {key: Path(result[key]) for key in ("saved_model", "fp32", "fp16")}
    for key, path in paths.items():
        if not path.exists():
            raise ValueError(f"onnx2tf did not produce the {key} model ({path.name}); log: {log}")
    return paths


def saved_model_to_int8(saved_model: Path, calibration: Sequence[np.ndarray], out_path: Path, log: Path, *,
                        float_nodes: Sequence[str] = (), io: tuple[str, str] = ("uint8", "uint8")) -> None:
    """Full int8: int8 weights (per-channel) and activations, uint8 image input and uint8 logits.
    Only TFLITE_BUILTINS_INT8 are allowed, so an op that would stay float fails the conversion
    (and check_builtin_ops checks the result again). `float_nodes`: output tensor names of ops to keep
    in float (the int8 repair, export.repair); everything else stays int8. `io`: the input and output
    types; a piece of a network cut out for measuring (the search's latency table) takes and gives int8
    activations, and its calibration samples are float activations instead of uint8 images."""
    calib_path = out_path.parent / "calibration.npy"
    samples = np.stack(list(calibration))
    np.save(calib_path, samples.astype(np.uint8) if io[0] == "uint8" else samples.astype(np.float32))
    request = {"task": "int8", "saved_model": str(saved_model.resolve()), "calibration": str(calib_path.resolve()),
               "out": str(out_path.resolve()), "float_nodes": list(float_nodes), "io": list(io)}
    _run_worker(request, out_path.parent, log)


def _not_convertible(msg: str) -> NotConvertibleError:
    op = _op_in_message(msg)
    if op:
        return NotConvertibleError(f"int8: op {op} has no int8 TFLite builtin (only Select TF ops could run it, "
                                   "and the light runtime has none); replace it in the model")
    return NotConvertibleError(f"int8 conversion failed: {msg[:240]}")


def _op_in_message(msg: str) -> str:
    for token in msg.replace("'", " ").replace('"', " ").split():
        if token.startswith(("tf.", "tfl.", "Flex")):
            return token.rstrip(":,.")
    return ""


def check_builtin_ops(path: Path, *, fmt: str, integer: bool, float_allowed: frozenset[str] = frozenset()) -> None:
    """Raise NotConvertibleError naming the first op that the light runtimes cannot run as a builtin:
    a Flex (Select TF) or custom op; for an `integer` format (export.formats), also any op whose output
    stays float, unless its output is one the int8 repair kept in float on purpose (`float_allowed`, tensor
    names). `fmt` names the format in the message."""
    from contract.runtime import interpreter_class

    interp = interpreter_class()(model_path=str(path))   # no allocate: a Flex op would fail there, unnamed
    for op in interp._get_ops_details():
        name = op["op_name"]
        if name.startswith("Flex") or name == "CUSTOM":
            raise NotConvertibleError(f"{fmt}: op {name} is not a TFLite builtin "
                                      "(Select TF / custom ops do not run on the light runtime)")
        if integer and name not in ("QUANTIZE", "DEQUANTIZE"):
            for t in op["outputs"]:
                dtype = interp._get_tensor_details(t, 0)["dtype"]
                if dtype in (np.float32, np.float16) and interp._get_tensor_details(t, 0)["name"] not in float_allowed:
                    raise NotConvertibleError(f"int8: op {name} (#{op['index']}) stays {np.dtype(dtype).name}")
