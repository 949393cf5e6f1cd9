"""The TensorFlow side of the export, run in a fresh process per task:

    python -m export.tf_worker REQUEST.json RESULT.json

Why a process of its own: TensorFlow's converter keeps state between conversions in one process.
Measured here: after one model had been converted, the next model's int8 conversion kept an
attention BATCH_MATMUL in float (DEQUANTIZE -> float op -> QUANTIZE) although only int8 builtins
were allowed; the same model converted first in a fresh process was fully int8. A fresh process per
conversion makes every export independent of what ran before it.

Tasks: "onnx2tf" (ONNX -> SavedModel + fp32/fp16 .tflite) and "int8" (SavedModel -> full int8 .tflite).
The result file holds {"ok": true, ...paths} or {"ok": false, "kind": "not_convertible"|"error", "message"}.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import numpy as np

ONNX2TF_SAMPLE = "calibration_image_sample_data_20x128x128x3_float32.npy"


class _NotConvertible(Exception):
    pass


def _onnx2tf(req: dict) -> dict:
    import onnx2tf  # not installed: the parent says which package and how to install it

    work = Path(req["work"])
    os.chdir(work)   # onnx2tf reads its validation sample (ONNX2TF_SAMPLE) from the working directory
    out_dir = work / "saved_model"
    try:
        onnx2tf.convert(input_onnx_file_path=req["onnx"], output_folder_path=str(out_dir), non_verbose=True,
                        copy_onnx_input_output_names_to_tflite=True,
                        check_onnx_tf_outputs_sample_data_normalization="denorm")
    except SystemExit as e:   # onnx2tf exits on unsupported ops after printing why
        raise RuntimeError(f"onnx2tf stopped (exit {e.code})") from None
    stem = Path(req["onnx"]).stem
    return {"saved_model": str(out_dir), "fp32": str(out_dir / f"{stem}_float32.tflite"),
            "fp16": str(out_dir / f"{stem}_float16.tflite")}


def _int8(req: dict) -> dict:
    """Calibrate (TFLiteConverter, calibrate-only), correct the recorded ranges that in-place ops
    overwrote (export.calibrate), then quantize: full int8 with uint8 input and output, except the ops
    whose output tensors are named in float_nodes (the int8 repair, export.repair), which get QUANTIZE /
    DEQUANTIZE around them (what TensorFlow's QuantizationDebugger does for selective quantization)."""
    import tensorflow as tf
    from tensorflow.lite.python import convert as tfl_convert

    from export.calibrate import true_ranges

    calibration = np.load(req["calibration"])
    samples = [image[None].astype(np.float32) for image in calibration]   # raw 0..255 NHWC (or activations)
    float_nodes = req.get("float_nodes") or []
    converter = tf.lite.TFLiteConverter.from_saved_model(req["saved_model"])
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    converter.representative_dataset = lambda: ([s] for s in samples)
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    if float_nodes:
        converter.target_spec.supported_ops.append(tf.lite.OpsSet.TFLITE_BUILTINS)
    converter._experimental_calibrate_only = True   # noqa: SLF001 - the documented route of the debugger
    try:
        recorded = converter.convert()
    except Exception as e:  # noqa: BLE001 - the converter raises many types; report its words
        raise _NotConvertible(" ".join(str(e).split())) from None
    calibrated, ranges = true_ranges(recorded, samples)
    try:
        io = [getattr(tf, t) for t in req.get("io", ("uint8", "uint8"))]
        flatbuffer = tfl_convert.mlir_quantize(calibrated, input_data_type=io[0], output_data_type=io[1],
                                               denylisted_nodes=set(float_nodes))
    except Exception as e:  # noqa: BLE001
        raise _NotConvertible(" ".join(str(e).split())) from None
    Path(req["out"]).write_bytes(flatbuffer)
    return {"int8": req["out"], "ranges": ranges}


def main(argv: list[str]) -> int:
    request, result_path = json.loads(Path(argv[0]).read_text()), Path(argv[1])
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    try:
        result = {"ok": True, **{"onnx2tf": _onnx2tf, "int8": _int8}[request["task"]](request)}
    except _NotConvertible as e:
        result = {"ok": False, "kind": "not_convertible", "message": str(e)}
    except ModuleNotFoundError as e:   # an install without the converter's packages: the user's to fix
        result = {"ok": False, "kind": "missing", "message": (e.name or str(e)).split(".")[0]}
    except Exception as e:  # noqa: BLE001 - everything else is reported to the parent, one line
        result = {"ok": False, "kind": "error", "message": f"{type(e).__name__}: {str(e).strip()}"}
    result_path.write_text(json.dumps(result))
    return 0 if result["ok"] else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
