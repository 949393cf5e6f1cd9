"""How long the simulated device spends on a frame.

- projected (a profile with an ARM core): the model's inference = its instructions per inference on
  that core (counted once on the aarch64 runtime under qemu, then cached by model hash) x the core's
  CPI / the clock, divided by the speedup of the profile's threads (device_sim.arm.projection).
  Pre- and post-processing are projected the same way from their own instructions, counted on the same
  core for the camera's frame size and the model's input (device_sim.arm.prepost), on one thread.
- fixed (a profile's [device] inference_ms): a what-if for the inference alone; pre- and
  post-processing are projected as above when the profile's core is an ARM core, else the host's.
- host (core = "host", or no aarch64 environment): what this machine measures, labelled "host".

A projected part takes the same device time on every frame, whatever the host is doing: the frame loop
(device_sim.loop) keeps the device's time on its own virtual clock, so drops, queueing and deadlines
follow the device and repeat from run to run. The host's own times are kept as the *_host_ms columns.
"""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from contract.card import card_arithmetic
from contract.errors import UserError

__all__ = ["DeviceTiming", "device_timing", "cached_instructions", "cache_file", "CACHE_ENV"]

CACHE_ENV = "EDGEVIT_CACHE_DIR"
COUNT_INVOKES = 3


@dataclass(frozen=True)
class DeviceTiming:
    kind: str                    # "projected", "fixed" or "host"
    label: str                   # for tables and plot legends
    inference_ms: float | None   # one inference on the device; None: as the host measures it
    stage_factor: float          # device / host inference time (reported: how much slower the device is)
    host_reference_ms: float     # this host's warm inference of the same model and threads
    pre_ms: float | None = None  # one preprocessing on the device; None: as the host measures it
    post_ms: float | None = None
    details: dict = field(default_factory=dict)

    def as_dict(self) -> dict:
        return asdict(self)


def cache_file(name: str = "instructions.json") -> Path:
    """A cache file of the simulator's (EDGEVIT_CACHE_DIR, else ~/.cache/edgevit)."""
    root = os.environ.get(CACHE_ENV) or Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "edgevit"
    return Path(root) / name


def cached_instructions(tflite: Path, sha256: str, core: str, x: np.ndarray, log=print) -> dict:
    """Instructions per inference of this model on `core` for the model input `x` (1, *input shape),
    counted on the aarch64 runtime once per (model hash, core, runtime and emulator versions) and
    cached. Raises UserError without an aarch64 environment."""
    from device_sim.arm.cores import get_core
    from device_sim.arm.count_cache import load_cache, save_cache, seal, usable
    from device_sim.arm.runner import find_env, instructions_per_inference

    env = find_env(None)
    versions = env.versions()
    key = f"{sha256}/{core}/{versions['runtime']}/{versions['emulator']}/steady"   # counted between marks
    path = cache_file()
    cache = load_cache(path)
    if not usable(key, cache.get(key), ("per_inference",)):   # never trust what this code did not write
        log(f"counting instructions per inference on {core} (aarch64 under qemu; once per model, cached in {path})")
        count = instructions_per_inference(env, get_core(core), tflite, x[None], invokes=COUNT_INVOKES)
        cache[key] = seal(key, {"per_inference": count["per_inference"], "invokes": COUNT_INVOKES, **versions})
        save_cache(path, cache, log)
    return cache[key]


def device_timing(model, profile, log=print, *, stage=None, pipeline=None) -> DeviceTiming:
    """How the device times `model` (for a pipeline: its `stage`, from the file `pipeline`)."""
    from device_sim.profiles import HOST_CORE

    gray = model.to_input(np.full((1, model.height, model.width, 3), 128, np.uint8))
    host_ms = model.warm_reference(gray) * 1e3
    if profile.core == HOST_CORE:
        fixed = profile.inference_ms
        label = "host" if fixed is None else f"fixed by the profile ({fixed:g} ms); pre/post-processing the host's"
        return DeviceTiming("host" if fixed is None else "fixed", label, fixed, 1.0, host_ms)
    try:
        prepost = _prepost(model, profile, stage, pipeline, log)
        counted = None if profile.inference_ms is not None else \
            cached_instructions(model.tflite, model.card["sha256"], profile.core, gray, log)
    except UserError as e:
        log(f"note: latency is this host's, not projected for {profile.core}: {e}")
        kind, label = ("host", "host (no projection)") if profile.inference_ms is None else \
            ("fixed", f"fixed by the profile ({profile.inference_ms:g} ms); pre/post-processing the host's")
        return DeviceTiming(kind, label, profile.inference_ms, 1.0, host_ms, details={"why": str(e)})
    parts = {"pre_ms": prepost["preprocess_ms"], "post_ms": prepost["postprocess_ms"]}
    if counted is None:
        return DeviceTiming("fixed", f"fixed by the profile ({profile.inference_ms:g} ms)", profile.inference_ms,
                            profile.inference_ms / host_ms, host_ms, **parts, details={"prepost": prepost})
    from device_sim.arm.projection import cpi, load_calibration, project_ms

    cal, arithmetic = load_calibration(), card_arithmetic(model.card)
    ms = project_ms(counted["per_inference"], profile.core, profile.clock_ghz, profile.threads, cal,
                    arithmetic=arithmetic)
    one = project_ms(counted["per_inference"], profile.core, profile.clock_ghz, 1, cal, arithmetic=arithmetic)
    label = f"projected, {profile.core} @ {profile.clock_ghz:g} GHz x{profile.threads}"
    return DeviceTiming("projected", label, ms, ms / host_ms, host_ms, **parts, details={
        "instructions_per_inference": counted["per_inference"], "core": profile.core,
        "clock_ghz": profile.clock_ghz, "threads": profile.threads, "one_thread_ms": one,
        "cpi": cpi(profile.core, arithmetic, cal), "arithmetic": arithmetic,
        "parallel_fraction": cal["parallel_fraction"],
        "calibration_loo_median_abs_error": cal["loo_median_abs_error"],
        "runtime": counted.get("runtime"), "emulator": counted.get("emulator"), "prepost": prepost})


def _prepost(model, profile, stage, pipeline, log) -> dict:
    """The projected pre- and post-processing of one invocation on the profile's core (device_sim.arm.prepost)."""
    from device_sim.arm.prepost import cached_prepost, prepost_unit, project_prepost

    unit = prepost_unit(model, (profile.camera_width, profile.camera_height), stage, pipeline)
    counted = cached_prepost([unit], profile.core, cache_file=cache_file(), log=log)[0]
    return {**project_prepost(counted, profile.core, profile.clock_ghz), "frame": unit["frame"]}
