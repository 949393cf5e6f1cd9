"""ONNX -> TFLite. onnx2tf turns the NCHW ONNX graph into an NHWC TensorFlow SavedModel (and writes
fp32/fp16 .tflite); full int8 comes from TFLiteConverter on that SavedModel with our own
representative data.

Why this route (../shared/TOOLCHAIN.md): onnx2tf's own int8 path broke on attention MatMuls with
custom calibration data and took minutes; TFLiteConverter on its SavedModel takes seconds and gives
the same ops. onnx2tf needs two things offline: `onnxsim` on PATH (it runs it as a subprocess) and
its validation sample file in the working directory (else it downloads one); both are provided here,
the sample built from our own calibration images.
"""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Sequence
from pathlib import Path

import cv2
import numpy as np

from export.quiet import captured_output, last_error_line

__all__ = ["onnx_to_tflite", "saved_model_to_int8", "check_builtin_ops", "NotConvertibleError"]

_ONNX2TF_SAMPLE = "calibration_image_sample_data_20x128x128x3_float32.npy"


class NotConvertibleError(ValueError):
    """The model contains an op the light TFLite runtimes cannot run (Flex/custom or float in int8)."""


@contextlib.contextmanager
def _in_dir(path: Path):
    old = Path.cwd()
    os.chdir(path)
    try:
        yield
    finally:
        os.chdir(old)


def _write_onnx2tf_sample(work: Path, images: np.ndarray) -> None:
    """onnx2tf validates its layout choices on 20 images of 128x128 in 0..1 (denormalized to 0..255
    below); give it ours instead of letting it download its own."""
    picks = [images[i % len(images)] for i in range(20)]
    sample = np.stack([cv2.resize(im, (128, 128), interpolation=cv2.INTER_LINEAR) for im in picks])
    np.save(work / _ONNX2TF_SAMPLE, (sample.astype(np.float32) / 255.0))


def onnx_to_tflite(onnx_path: Path, work: Path, sample_images: np.ndarray, log: Path) -> dict[str, Path]:
    """Returns {"saved_model": dir, "fp32": .tflite, "fp16": .tflite} inside `work`."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    bin_dir = str(Path(sys.executable).parent)
    if bin_dir not in os.environ.get("PATH", "").split(os.pathsep):
        os.environ["PATH"] = bin_dir + os.pathsep + os.environ.get("PATH", "")
    try:
        with captured_output(log):   # importing TensorFlow prints a screenful of CUDA/absl chatter
            import onnx2tf
    except ImportError:
        raise ValueError("onnx2tf is not installed; run `make setup` (it installs onnx2tf==1.29.24)") from None
    work.mkdir(parents=True, exist_ok=True)
    _write_onnx2tf_sample(work, sample_images)
    out_dir = work / "saved_model"
    try:
        with captured_output(log), _in_dir(work):
            onnx2tf.convert(
                input_onnx_file_path=str(onnx_path.resolve()), output_folder_path=str(out_dir),
                non_verbose=True, copy_onnx_input_output_names_to_tflite=True,
                check_onnx_tf_outputs_sample_data_normalization="denorm",
            )
    except SystemExit as e:  # onnx2tf calls sys.exit(1) on unsupported ops
        raise ValueError(f"onnx2tf failed (exit {e.code}): {last_error_line(log)}") from None
    except Exception as e:  # noqa: BLE001 - report the converter's own words, one line
        raise ValueError(f"onnx2tf failed: {str(e).splitlines()[0][:200] if str(e) else type(e).__name__}; "
                         f"log: {log}") from None
    stem = onnx_path.stem
    result = {"saved_model": out_dir, "fp32": out_dir / f"{stem}_float32.tflite",
              "fp16": out_dir / f"{stem}_float16.tflite"}
    for key, path in result.items():
        if not path.exists():
            raise ValueError(f"onnx2tf did not produce the {key} model ({path.name}); log: {log}")
    return result


def saved_model_to_int8(saved_model: Path, calibration: Sequence[np.ndarray], out_path: Path, log: Path) -> None:
    """Full int8: int8 weights (per-channel) and activations, uint8 image input and uint8 logits.
    Only TFLITE_BUILTINS_INT8 are allowed, so an op that would stay float fails the conversion."""
    with captured_output(log):
        import tensorflow as tf

    def representative():
        for image in calibration:
            yield [image[None].astype(np.float32)]   # raw 0..255 NHWC, exactly what the device feeds

    converter = tf.lite.TFLiteConverter.from_saved_model(str(saved_model))
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    converter.representative_dataset = representative
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    converter.inference_input_type = tf.uint8
    converter.inference_output_type = tf.uint8
    try:
        with captured_output(log):
            flatbuffer = converter.convert()
    except Exception as e:  # noqa: BLE001
        msg = " ".join(str(e).split())
        op = _op_in_message(msg)
        if op:
            raise NotConvertibleError(f"int8: op {op} has no int8 TFLite builtin (only Select TF ops could run it, "
                                      "and the light runtime has none); replace it in the model") from None
        raise NotConvertibleError(f"int8 conversion failed: {msg[:240]}") from None
    out_path.write_bytes(flatbuffer)


def _op_in_message(msg: str) -> str:
    for token in msg.replace("'", " ").replace('"', " ").split():
        if token.startswith(("tf.", "tfl.", "Flex")):
            return token.rstrip(":,.")
    return ""


def check_builtin_ops(path: Path, *, fmt: str) -> None:
    """Raise NotConvertibleError naming the first op that the light runtimes cannot run as a builtin:
    a Flex (Select TF) or custom op; for int8, also any op whose output stays float."""
    from export.litert import Interpreter

    interp = Interpreter(model_path=str(path))   # no allocate: a Flex op would fail there, unnamed
    for op in interp._get_ops_details():
        name = op["op_name"]
        if name.startswith("Flex") or name == "CUSTOM":
            raise NotConvertibleError(f"{fmt}: op {name} is not a TFLite builtin "
                                      "(Select TF / custom ops do not run on the light runtime)")
        if fmt == "int8" and name not in ("QUANTIZE", "DEQUANTIZE"):
            for t in op["outputs"]:
                dtype = interp._get_tensor_details(t, 0)["dtype"]
                if dtype in (np.float32, np.float16):
                    raise NotConvertibleError(f"int8: op {name} (#{op['index']}) stays {np.dtype(dtype).name}")
