"""The model card, `model.json` beside every .tflite: the contract between export and the device.

Schema "edgevit.model/1":
  name, format, file, sha256, size_bytes, labels,
  arithmetic (optional; cards written before it was recorded have none): what the model's kernels compute in on
          the device's CPU, one of ARITHMETICS, set by the export format (export.formats); the latency
          projection picks its CPI by it (`card_arithmetic`)
  input:  name, shape [1, H, W, 3] (NHWC), layout, dtype, quantization {scale, zero_point} or null,
          color (RGB|BGR), value_range, normalization (what is folded inside),
          resize: the input geometry, {policy: center_crop|letterbox|stretch, interpolation_down/_up,
          pixel_centers, border, pad_value} (contract.images; a card without it, or with the older
          {crop: center_square|none, ...}, is read as edgevit always fed its models)
  output: name, shape, dtype, quantization, softmax_applied, meaning
  outputs (optional): every output tensor's spec, in the runtime's order (output is the first)
  task (optional, default DEFAULT_TASK, a classifier: then labels must not be empty): what the outputs
          mean, a name of letters, digits and _. The kinds and what each means are device_sim's task
          registry (device_sim/tasks/: classification, raw, segmentation, detection, landmarks, ...),
          which checks the name and the card against it when the model is loaded
  source, toolchain, fidelity: provenance and this artifact's measured numbers (free-form objects)
export builds it with `build_card` and writes it with `write_card`; device_sim reads it with `read_card`.
A .tflite nobody exported gets its card from its own tensor details plus what the user says about it
(`bare_card`): the same validation and the same code paths read both.
"""

from __future__ import annotations

import json
import math
from datetime import UTC, datetime
from pathlib import Path

from contract.errors import UserError
from contract.files import sha256_file, write_json
from contract.images import RESIZE_POLICY, check_resize_policy

__all__ = ["SCHEMA", "CARD_NAME", "SAMPLE_PACK", "DEFAULT_TASK", "ARITHMETICS", "INTEGER_ARITHMETICS", "tensor_spec",
           "build_card", "bare_card", "card_arithmetic", "validate_card", "card_error", "read_card", "write_card",
           "card_candidate", "model_inputs", "resolve_card", "check_artifact", "is_bare_tflite", "BARE_OPTIONS"]

SCHEMA = "edgevit.model/1"
CARD_NAME = "model.json"
SAMPLE_PACK = "samples.npz"    # test images export writes beside the format folders (the synthetic camera)
INPUT_DTYPES = ("uint8", "int8", "float32", "float16")
TENSOR_DTYPES = ("float32", "float16", "uint8", "int8", "int16", "int32", "int64", "bool")   # a tensor spec's
DEFAULT_TASK = "classification"   # what a card without a task is (export's cards)
ARITHMETICS = ("fp32", "fp16", "int8")   # what a model's kernels may compute in (a card's "arithmetic")
INTEGER_ARITHMETICS = frozenset({"int8"})   # integer kernels: every op but (de)quantize computes in integers
_REQUIRED = {"schema": str, "file": str, "sha256": str, "labels": list, "input": dict, "output": dict}


def tensor_spec(detail: dict) -> dict:
    """A TFLite tensor detail (get_input_details()[i]) -> the card's tensor object."""
    import numpy as np

    scale, zero = detail["quantization"]
    dtype = np.dtype(detail["dtype"]).name
    quant = {"scale": float(scale), "zero_point": int(zero)} if dtype in ("uint8", "int8") and scale else None
    return {"name": detail["name"], "shape": [int(v) for v in detail["shape"]], "dtype": dtype, "quantization": quant}


def build_card(*, name: str, fmt: str, arithmetic: str, tflite: Path, input_detail: dict, output_detail: dict,
               labels: list[str], mean=None, std=None, source: dict | None = None, fidelity: dict | None = None,
               toolchain: dict | None = None) -> dict:
    """The card of an exported classifier that takes raw 0..255 RGB pixels (normalization folded inside)."""
    folded = mean is not None
    card = {
        "schema": SCHEMA, "name": name, "format": fmt, "arithmetic": arithmetic, "file": tflite.name,
        "sha256": sha256_file(tflite),        "size_bytes": tflite.stat().st_size, "labels": [str(v) for v in labels],
        "input": {**tensor_spec(input_detail), "layout": "NHWC", "color": "RGB", "value_range": [0, 255],
                  "resize": dict(RESIZE_POLICY),
                  "normalization": {"folded": folded, "mean": list(mean) if folded else None,
                                    "std": list(std) if folded else None,
                                    "note": "feed raw pixels; (x/255 - mean)/std happens inside the model"}},
        "output": {**tensor_spec(output_detail), "softmax_applied": False, "meaning": "logits"},
        "source": dict(source or {}), "toolchain": dict(toolchain or {}), "fidelity": dict(fidelity or {}),
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
    }
    validate_card(card, Path(tflite).with_name(CARD_NAME))
    return card


def bare_card(tflite: Path, input_detail: dict, output_details: list[dict], *, task: str = "raw",
              labels: list[str] | None = None, value_range=(0, 255), mean=None, std=None, color: str = "RGB",
              softmax_applied: bool = False, resize: dict | None = None) -> dict:
    """The card of a .tflite nobody exported: its tensors as the runtime reports them, and what only the
    user knows (task, labels, the values it expects for pixels 0..255, color order, input geometry)."""
    tflite = Path(tflite)
    quantized = input_detail["quantization"][0] != 0 or any(d["quantization"][0] != 0 for d in output_details)
    outputs = [tensor_spec(d) for d in output_details]
    kind = "int8" if quantized else "fp32"   # quantized tensors: the integer kernels; else float ones
    card = {
        "schema": SCHEMA, "name": tflite.stem, "format": kind, "arithmetic": kind, "file": tflite.name,
        "sha256": sha256_file(tflite), "size_bytes": tflite.stat().st_size, "task": task,
        "labels": [str(v) for v in labels or []],
        "input": {**tensor_spec(input_detail), "layout": "NHWC", "color": color.upper(),
                  "value_range": [float(v) for v in value_range],
                  "resize": dict(RESIZE_POLICY if resize is None else resize),
                  "normalization": {"folded": mean is None, "mean": None if mean is None else [float(v) for v in mean],
                                    "std": None if std is None else [float(v) for v in std],
                                    "note": "given on the command line"}},
        "output": {**outputs[0], "softmax_applied": softmax_applied}, "outputs": outputs,
        "source": {"bare_tflite": str(tflite)}, "toolchain": {}, "fidelity": {},
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
    }
    return validate_card(card, tflite)


def card_arithmetic(card: dict) -> str:
    """What the card's model computes in: its "arithmetic"; for a card written before that was recorded, the one
    the export formats of that time had (int8 for int8, fp32 for fp32 and fp16, whose float16 weights run
    fp32 kernels). The one place a format name decides anything outside the format registry."""
    if "arithmetic" in card:
        return card["arithmetic"]
    return "int8" if card.get("format") == "int8" else "fp32"


def _check_values(inp: dict, bad) -> None:
    vr = inp.get("value_range", [0, 255])
    if not (isinstance(vr, list) and len(vr) == 2 and all(isinstance(v, (int, float)) for v in vr)
            and all(math.isfinite(v) for v in vr) and vr[0] < vr[1]):
        raise bad(f"input.value_range must be [low, high] with low < high, got {vr!r}")
    norm = inp.get("normalization") or {}
    if not norm.get("folded", True) and norm.get("mean") is not None:
        for key in ("mean", "std"):
            v = norm.get(key)
            if not (isinstance(v, list) and len(v) == 3 and all(isinstance(x, (int, float)) and math.isfinite(x)
                                                                 for x in v)):
                raise bad(f"input.normalization.{key} must be 3 numbers (one per channel), got {v!r}")
        if not all(x > 0 for x in norm["std"]):
            raise bad(f"input.normalization.std must be > 0, got {norm['std']!r}")


BARE_OPTIONS = "(--task, --labels, --input-range, --mean/--std, --color, --resize)"   # what describes a bare model


def card_error(path: Path, what: str) -> UserError:
    """A card's problem in one line, with the fix: the options of a bare model (its card comes from the command
    line: `path` is its .tflite), or re-exporting."""
    if Path(path).suffix == ".tflite":
        return UserError(f"{path}: {what}; check the options that describe it {BARE_OPTIONS}")
    return UserError(f"{path} is malformed: {what}; re-run `edgevit export`")


def validate_card(card: dict, path: Path) -> dict:
    """Raises UserError naming the first bad field; returns the card."""
    def bad(what: str) -> UserError:
        return card_error(path, what)

    if not isinstance(card, dict):
        raise UserError(f"{path} is not an edgevit model card (expected a JSON object)")
    for key, kind in _REQUIRED.items():
        if not isinstance(card.get(key), kind):
            raise bad(f"field '{key}' is missing or not a {kind.__name__}")
    if card["schema"] != SCHEMA:
        raise UserError(f"{path} has schema {card['schema']!r}; this edgevit reads {SCHEMA!r}")
    inp, out = card["input"], card["output"]
    shape = inp.get("shape")
    if not (isinstance(shape, list) and len(shape) == 4 and shape[0] == 1 and shape[3] == 3
            and all(isinstance(v, int) and v > 0 for v in shape)):
        raise bad(f"input.shape must be [1, H, W, 3], got {shape!r}")
    if inp.get("dtype") not in INPUT_DTYPES:
        raise bad(f"input.dtype {inp.get('dtype')!r} is not one of {', '.join(INPUT_DTYPES)}")
    if inp.get("layout", "NHWC") != "NHWC":
        raise bad(f"only NHWC inputs are supported, got input.layout {inp.get('layout')!r}")
    if card.get("arithmetic", ARITHMETICS[0]) not in ARITHMETICS:
        raise bad(f"arithmetic {card.get('arithmetic')!r} is not one of {', '.join(ARITHMETICS)}")
    if str(inp.get("color", "RGB")).upper() not in ("RGB", "BGR"):
        raise bad(f"input.color must be RGB or BGR, got {inp.get('color')!r}")
    try:
        check_resize_policy(inp.get("resize", RESIZE_POLICY))
    except ValueError as e:
        raise bad(str(e)) from None
    task = card.get("task", DEFAULT_TASK)
    if not (isinstance(task, str) and task.replace("_", "").isalnum() and task.isascii()):
        raise bad(f"task {task!r} is not a task name (letters, digits and _)")
    if "task" not in card and not card["labels"]:
        raise bad("labels is empty (a classifier needs its class names)")
    _check_values(inp, bad)
    outputs = card.get("outputs", [out])
    if not (isinstance(outputs, list) and outputs and all(isinstance(o, dict) for o in outputs)):
        raise bad("outputs must be a non-empty list of tensor specs")
    for where, spec in (("input", inp), ("output", out), *((f"outputs[{i}]", o) for i, o in enumerate(outputs))):
        shape = spec.get("shape")
        if not (isinstance(shape, list) and all(isinstance(v, int) and not isinstance(v, bool) and v >= 0
                                                for v in shape)):
            raise bad(f"{where}.shape must be a list of whole numbers, got {shape!r}")
        if spec.get("dtype") not in TENSOR_DTYPES:
            raise bad(f"{where}.dtype {spec.get('dtype')!r} is not one of {', '.join(TENSOR_DTYPES)}")
        q = spec.get("quantization")
        # a scale past 1e30 (or inf) dequantizes to inf: non-finite outputs nobody would see in a decoded detection
        if q is not None and not (isinstance(q, dict) and isinstance(q.get("scale"), (int, float))
                                  and 0 < q["scale"] <= 1e30 and isinstance(q.get("zero_point"), int)
                                  and abs(q["zero_point"]) < 2 ** 31):
            raise bad(f"{where}.quantization must be null or {{scale in (0, 1e30], zero_point}}, got {q!r}")
    return card


def card_candidate(path: str | Path) -> Path:
    """Folder, model.json or model.tflite -> where its card would be (it may not exist)."""
    path = Path(path)
    if path.is_dir():
        return path / CARD_NAME
    return path.with_name(CARD_NAME) if path.suffix == ".tflite" else path


def is_bare_tflite(path: str | Path) -> bool:
    """A .tflite with no model card beside it (a model nobody exported)."""
    path = Path(path)
    return path.suffix == ".tflite" and not card_candidate(path).is_file()


def model_inputs(model: str | Path, samples: str | Path | None = None, *,
                 sample_pack: bool = False) -> tuple[Path, ...]:
    """What a command reading `model` (a folder, model.json or .tflite) reads, for its output checks: the
    path given, the card's folder (the card and the .tflite it names) and the sample pack (`samples`, or
    with `sample_pack` the export's default one)."""
    paths = [Path(model)] + ([Path(samples)] if samples else [])
    card = card_candidate(model)
    if card.is_file():
        paths.append(card.parent)
        if sample_pack and not samples:
            paths.append(card.parent.parent / SAMPLE_PACK)
    return tuple(paths)


def resolve_card(path: str | Path) -> Path:
    """Folder, model.json or model.tflite -> the card's path, which must exist."""
    path = Path(path)
    if path.is_file() and path.suffix not in (".json", ".tflite"):
        raise UserError(f"{path} is not an export folder, a model.json or a .tflite; point --model at an export "
                        "folder (e.g. artifacts/edgevit_xs-digits/int8) made by `edgevit export`")
    candidate = card_candidate(path)
    if not candidate.is_file():
        raise UserError(f"{CARD_NAME} not found at {candidate}; point --model at an export folder "
                        "(e.g. artifacts/edgevit_xs-digits/int8) made by `edgevit export`")
    return candidate


def read_card(path: str | Path) -> tuple[dict, Path]:
    """(validated card, its path) from a folder, model.json or model.tflite."""
    card_path = resolve_card(path)
    try:
        card = json.loads(card_path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise UserError(f"{card_path} is not valid JSON ({e}); it should be the {CARD_NAME} "
                        "written by `edgevit export`") from None
    return validate_card(card, card_path), card_path


def check_artifact(card: dict, card_path: Path) -> Path:
    """The .tflite the card names, which must exist and match its sha256."""
    tflite = card_path.parent / card["file"]
    if not tflite.is_file():
        raise UserError(f"{tflite} is missing (named by {card_path}); re-run `edgevit export`")
    if sha256_file(tflite) != card["sha256"]:
        raise UserError(f"{tflite} does not match the sha256 in {card_path}: the file is corrupt or was replaced; "
                        "re-run `edgevit export`")
    return tflite


def write_card(path: Path, card: dict) -> None:
    validate_card(card, path)
    write_json(path, card)
