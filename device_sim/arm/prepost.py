"""The device's pre- and post-processing time, projected like its inference.

The simulator's per-frame work around the model (colour conversion, resize or crop, input quantization;
output dequantization and decoding) is OpenCV and numpy code. Its instructions are counted on the target
core in the same aarch64 environment as the inference (runner.prepost_per_invocation runs the project's
own device_sim code in the emulated Python, prepost_guest.py), once per (model card, pipeline stage,
camera frame size, core, runtime and emulator, version of the code counted), and cached beside the
inference counts. Milliseconds = instructions x the core kind's fp32 CPI (projection.cpi: OpenCV's and
numpy's kernels are fp32 and integer code, not XNNPACK's int8 kernels) / the clock, on one thread.

A center_crop resize (INTER_AREA) reads every camera pixel: its count grows with the frame. letterbox and
stretch warp the frame straight into the model's input (bilinear sampling per input pixel, colour converted
after): theirs follows the model's input size and barely moves with the camera's.

The count is made on a uniform gray frame: it does not depend on what the camera sees, so every frame of
a run costs the same; decoding work that grows with the number of detections is not in it.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from contract.errors import UserError

__all__ = ["prepost_unit", "cached_prepost", "project_prepost", "CODE_COUNTED", "COUNT_INVOKES"]

COUNT_INVOKES = 3
PREPOST_ARITHMETIC = "fp32"   # OpenCV's and numpy's code: float kernels (the CPI of the core kind's fp32 group)
_ROOT = Path(__file__).resolve().parents[2]
# the code whose instructions are counted: a change to any of it is counted again
# (the task kinds' files: their postprocess and decoders are the post-processing counted)
CODE_COUNTED = ("contract/images.py", "contract/quant.py", "device_sim/model.py", "device_sim/stages.py",
                "device_sim/decode/ssd.py", "device_sim/decode/geometry.py", "device_sim/arm/prepost_guest.py",
                *sorted(p.relative_to(_ROOT).as_posix() for p in (_ROOT / "device_sim" / "tasks").glob("*.py")))
# card fields that change nothing the count measures: a bare card's load time, and where the file came from or
# lies (the model is its sha256: the same file from another folder or under another name is the same count)
_NOT_COUNTED = ("created", "source", "toolchain", "fidelity", "name", "file")


def _digest(*parts: bytes) -> str:
    h = hashlib.sha256()
    for p in parts:
        h.update(hashlib.sha256(p).digest())
    return h.hexdigest()[:16]


def prepost_unit(model, frame_wh: tuple[int, int], stage=None, pipeline: Path | None = None) -> dict:
    """What prepost_guest.py runs: the model's card and file, the camera frame size, and for a pipeline
    stage its pipeline file and name (the stage's own crop and decoding)."""
    unit = {"card": model.card, "tflite": str(Path(model.tflite).resolve()), "frame": [int(v) for v in frame_wh],
            "stage": None}
    if stage is not None:
        unit["stage"] = {"pipeline": str(Path(pipeline).resolve()), "name": stage.name}
    return unit


def _key(unit: dict, core: str, versions: dict) -> str:
    code = [(_ROOT / f).read_bytes() for f in CODE_COUNTED]
    stage = unit["stage"]
    card = {k: v for k, v in unit["card"].items() if k not in _NOT_COUNTED}
    what = json.dumps({"card": card, "stage": stage and stage["name"]}, sort_keys=True, default=str).encode()
    pipeline = Path(stage["pipeline"]).read_bytes() if stage else b""
    w, h = unit["frame"]
    return (f"prepost/{_digest(what, pipeline)}/{w}x{h}/{core}/{versions['runtime']}/{versions['emulator']}/"
            f"code-{_digest(*code)}")


def cached_prepost(units: list[dict], core: str, *, cache_file: Path, log=print) -> list[dict]:
    """Instructions of one preprocessing and one postprocessing of each unit on `core`: from the cache, or
    counted (all missing units in one guest run) and cached. Raises UserError without an aarch64
    environment, or one without OpenCV."""
    from device_sim.arm.cores import get_core
    from device_sim.arm.count_cache import load_cache, save_cache, seal, usable
    from device_sim.arm.runner import find_env, prepost_per_invocation

    env = find_env(None)
    if not (env.site / "cv2").is_dir():
        raise UserError(f"the aarch64 environment {env.root} has no OpenCV, which the pre- and post-processing "
                        "counts need; run `make arm-setup` again (it adds it)")
    versions = env.versions()
    keys = [_key(u, core, versions) for u in units]
    cache = load_cache(cache_file)
    missing = [i for i, k in enumerate(keys) if not usable(k, cache.get(k), ("preprocess", "postprocess"))]
    if missing:
        log(f"counting pre- and post-processing instructions on {core} for {units[0]['frame'][0]}x"
            f"{units[0]['frame'][1]} frames (aarch64 under qemu; once, cached in {cache_file})")
        counted = prepost_per_invocation(env, get_core(core), [units[i] for i in missing], invokes=COUNT_INVOKES)
        for i, c in zip(missing, counted):
            cache[keys[i]] = seal(keys[i], {**c, "invokes": COUNT_INVOKES, **versions})
        save_cache(cache_file, cache, log)
    return [cache[k] for k in keys]


def project_prepost(counted: dict, core: str, clock_ghz: float, calibration: dict | None = None) -> dict:
    """Milliseconds of one pre- and post-processing on the device (one thread, the fp32 CPI of the core kind)."""
    from device_sim.arm.projection import cpi, load_calibration, project_ms

    cal = calibration or load_calibration()
    ms = {part: project_ms(counted[part], core, clock_ghz, 1, cal, arithmetic=PREPOST_ARITHMETIC)
          for part in ("preprocess", "postprocess")}
    return {"core": core, "preprocess_instructions": counted["preprocess"],
            "postprocess_instructions": counted["postprocess"], "preprocess_ms": ms["preprocess"],
            "postprocess_ms": ms["postprocess"], "cpi": cpi(core, PREPOST_ARITHMETIC, cal), "threads": 1,
            "counted_on": "a uniform gray frame (decoding that grows with the detections found is not counted)"}
