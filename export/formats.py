"""The export formats, described in one table: name -> file, what it is, options it accepts.

An option a format does not accept is rejected with a clear error, never silently changed.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["Format", "FORMATS", "parse_formats", "check_options"]


@dataclass(frozen=True)
class Format:
    name: str
    file: str                    # path inside the output folder
    description: str
    options: frozenset[str]      # keyword options of export.convert() this format uses
    tflite: bool


FORMATS: dict[str, Format] = {f.name: f for f in (
    Format("onnx", "model.onnx", "ONNX, float32 NCHW, opset 20, verified with ONNX Runtime",
           frozenset({"opset"}), tflite=False),
    Format("fp32", "fp32/model.tflite", "TFLite float32, NHWC float input 0..255",
           frozenset(), tflite=True),
    Format("fp16", "fp16/model.tflite", "TFLite float16 weights (float32 compute on CPU), NHWC float input",
           frozenset(), tflite=True),
    Format("int8", "int8/model.tflite", "TFLite full int8 (per-channel weights), uint8 NHWC image input",
           frozenset({"calibration", "calib_samples"}), tflite=True),
)}


def parse_formats(spec: str | list[str] | tuple[str, ...]) -> tuple[str, ...]:
    names = [s.strip() for s in (spec.split(",") if isinstance(spec, str) else spec) if s.strip()]
    if not names:
        raise ValueError(f"no formats given; choose from {', '.join(FORMATS)}")
    unknown = [n for n in names if n not in FORMATS]
    if unknown:
        raise ValueError(f"unknown format {unknown[0]!r}; choose from {', '.join(FORMATS)}")
    return tuple(n for n in FORMATS if n in names)   # table order: every TFLite is made from the ONNX graph


def check_options(formats: tuple[str, ...], given: dict[str, object]) -> None:
    """`given` holds the format-specific options the caller set (not None)."""
    accepted = set().union(*(FORMATS[f].options for f in formats))
    for option in given:
        if option not in accepted:
            users = [f.name for f in FORMATS.values() if option in f.options]
            raise ValueError(f"option {option!r} applies to format(s) {', '.join(users)}, "
                             f"which are not being exported ({', '.join(formats)})")
