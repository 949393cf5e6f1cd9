"""How long the simulated device spends on a frame.

- projected (a profile with an ARM core): the model's inference = its instructions per inference on
  that core (counted once on the aarch64 runtime under qemu, then cached by model hash) x the core's
  CPI / the clock, divided by the speedup of the profile's threads (device_sim.target.projection).
  Pre- and post-processing are measured on the host and scaled by the same core factor: projected
  inference / this host's warm inference of the same model. That treats OpenCV's resize and numpy's
  softmax like the network's kernels, which they are not (they are memory-bound): it is the simplest
  scaling with no free constant, and the host-measured times are kept as their own columns. The
  factor stretches the stages' warm host times measured before the loop (on a gray frame of the
  camera's size), not each frame's: per frame the loop adds (factor - 1) x that reference, so this
  shared host's frame-to-frame noise passes through once instead of being multiplied.
- fixed (a profile's [device] inference_ms): a what-if for the inference alone; pre- and
  post-processing take what the host measures.
- host (core = "host", or no aarch64 environment): what this machine measures, labelled "host".

The loop spends the device's time in wall-clock time (it sleeps the difference after each stage), so
drops, queueing and deadlines follow the device. Where the host is slower than the device, the host's
time is what passes: those frames are counted and the latencies are then upper bounds.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from contract.errors import UserError
from contract.files import write_json

__all__ = ["DeviceTiming", "device_timing", "cached_instructions", "CACHE_ENV"]

CACHE_ENV = "EDGEVIT_CACHE_DIR"
COUNT_INVOKES = 3


@dataclass(frozen=True)
class DeviceTiming:
    kind: str                    # "projected", "fixed" or "host"
    label: str                   # for tables and plot legends
    inference_ms: float | None   # one inference on the device; None: as the host measures it
    stage_factor: float          # device / host inference time: the factor the stage references are scaled by
    host_reference_ms: float     # this host's warm inference of the same model and threads
    pre_extra_ms: float = 0.0    # what the device adds to each frame's host preprocessing: (factor - 1) x reference
    post_extra_ms: float = 0.0
    details: dict = field(default_factory=dict)

    def as_dict(self) -> dict:
        return asdict(self)


def _cache_file() -> Path:
    root = os.environ.get(CACHE_ENV) or Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "edgevit"
    return Path(root) / "instructions.json"


def cached_instructions(tflite: Path, sha256: str, core: str, x: np.ndarray, log=print) -> dict:
    """Instructions per inference of this model on `core` for the model input `x` (1, *input shape),
    counted on the aarch64 runtime once per (model hash, core, runtime and emulator versions) and
    cached. Raises UserError without an aarch64 environment."""
    from device_sim.target.cores import get_core
    from device_sim.target.runner import find_env, instructions_per_inference

    env = find_env(None)
    versions = env.versions()
    key = f"{sha256}/{core}/{versions['runtime']}/{versions['emulator']}"
    path = _cache_file()
    try:
        cache = json.loads(path.read_text())
    except (OSError, ValueError):
        cache = {}
    if key not in cache or not cache[key].get("per_inference", 0) > 0:   # never trust a non-positive count
        log(f"counting instructions per inference on {core} (aarch64 under qemu; once per model, cached in {path})")
        count = instructions_per_inference(env, get_core(core), tflite, x[None], invokes=COUNT_INVOKES)
        cache[key] = {"per_inference": count["per_inference"], "invokes": COUNT_INVOKES, **versions}
        try:
            write_json(path, cache)
        except OSError as e:
            log(f"note: could not cache the count in {path} ({e}); it will be counted again next time")
    return cache[key]


def device_timing(model, profile, log=print) -> DeviceTiming:
    from device_sim.profiles import HOST_CORE

    gray = model.to_input(np.full((1, model.height, model.width, 3), 128, np.uint8))
    host_ms = model.warm_reference(gray) * 1e3
    if profile.inference_ms is not None:
        return DeviceTiming("fixed", f"fixed by the profile ({profile.inference_ms:g} ms)", profile.inference_ms,
                            1.0, host_ms)
    if profile.core == HOST_CORE:
        return DeviceTiming("host", "host", None, 1.0, host_ms)
    try:
        counted = cached_instructions(model.tflite, model.card["sha256"], profile.core, gray, log)
    except UserError as e:
        log(f"note: latency is this host's, not projected for {profile.core}: {e}")
        return DeviceTiming("host", "host (no projection)", None, 1.0, host_ms, details={"why": str(e)})
    from device_sim.target.projection import cpi, load_calibration, project_ms

    cal, fmt = load_calibration(), model.card.get("format", "fp32")
    ms = project_ms(counted["per_inference"], profile.core, profile.clock_ghz, profile.threads, cal, fmt=fmt)
    one = project_ms(counted["per_inference"], profile.core, profile.clock_ghz, 1, cal, fmt=fmt)
    label = f"projected, {profile.core} @ {profile.clock_ghz:g} GHz x{profile.threads}"
    factor = ms / host_ms
    stages = _stage_references(model, np.full((profile.camera_height, profile.camera_width, 3), 128, np.uint8))
    extra = {f"{k}_extra_ms": max(factor - 1.0, 0.0) * v for k, v in stages.items()}
    return DeviceTiming("projected", label, ms, factor, host_ms, **extra, details={
        "instructions_per_inference": counted["per_inference"], "core": profile.core,
        "clock_ghz": profile.clock_ghz, "threads": profile.threads, "one_thread_ms": one,
        "cpi": cpi(profile.core, fmt, cal), "parallel_fraction": cal["parallel_fraction"],
        "calibration_loo_median_abs_error": cal["loo_median_abs_error"],
        "runtime": counted.get("runtime"), "emulator": counted.get("emulator"),
        "host_reference_stage_ms": stages})


def _stage_references(model, frame: np.ndarray, runs: int = 20) -> dict:
    """Median warm host ms of preprocessing a camera frame and of postprocessing the model's output."""
    import time

    x = model.preprocess(frame)
    raw = model.invoke(x)
    times = {"pre": [], "post": []}
    for _ in range(runs):
        t0 = time.perf_counter()
        model.preprocess(frame)
        t1 = time.perf_counter()
        model.postprocess(raw)
        times["pre"].append(t1 - t0)
        times["post"].append(time.perf_counter() - t1)
    return {k: float(np.median(v)) * 1e3 for k, v in times.items()}

