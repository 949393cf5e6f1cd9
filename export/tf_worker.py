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
    try:
        import onnx2tf
    except ImportError:
        raise RuntimeError("onnx2tf is not installed; run `make setup` (it installs onnx2tf==1.29.24)") from None

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
    import tensorflow as tf

    calibration = np.load(req["calibration"])

    def representative():
        for image in calibration:
            yield [image[None].astype(np.float32)]   # raw 0..255 NHWC, exactly what the device feeds

    converter = tf.lite.TFLiteConverter.from_saved_model(req["saved_model"])
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    converter.representative_dataset = representative
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    converter.inference_input_type = tf.uint8
    converter.inference_output_type = tf.uint8
    float_nodes = req.get("float_nodes") or []
    try:
        flatbuffer = _keep_float(converter, float_nodes) if float_nodes else converter.convert()
    except Exception as e:  # noqa: BLE001 - the converter raises many types; report its words
        raise _NotConvertible(" ".join(str(e).split())) from None
    Path(req["out"]).write_bytes(flatbuffer)
    return {"int8": req["out"]}


def _keep_float(converter, float_nodes: list[str]) -> bytes:
    """Full int8 except the ops whose output tensors are named in float_nodes: calibrate only, then
    quantize with those nodes denylisted (what TensorFlow's QuantizationDebugger does for selective
    quantization). The float ops get QUANTIZE / DEQUANTIZE around them."""
    import tensorflow as tf
    from tensorflow.lite.python import convert as tfl_convert

    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8, tf.lite.OpsSet.TFLITE_BUILTINS]
    converter.experimental_mlir_quantizer = True
    converter._experimental_calibrate_only = True   # noqa: SLF001 - the documented route of the debugger
    calibrated = converter.convert()
    return tfl_convert.mlir_quantize(calibrated, fully_quantize=True, input_data_type=tf.uint8,
                                     output_data_type=tf.uint8, denylisted_nodes=set(float_nodes))


def main(argv: list[str]) -> int:
    request, result_path = json.loads(Path(argv[0]).read_text()), Path(argv[1])
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    try:
        result = {"ok": True, **{"onnx2tf": _onnx2tf, "int8": _int8}[request["task"]](request)}
    except _NotConvertible as e:
        result = {"ok": False, "kind": "not_convertible", "message": str(e)}
    except Exception as e:  # noqa: BLE001 - everything else is reported to the parent, one line
        result = {"ok": False, "kind": "error", "message": f"{type(e).__name__}: {str(e).strip()}"}
    result_path.write_text(json.dumps(result))
    return 0 if result["ok"] else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
