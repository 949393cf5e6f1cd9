"""Memory a device spends on a model, measured in a process that holds nothing else.

    python -m device_sim.footprint MODEL.tflite [MORE.tflite ...] --threads N     # prints one JSON line

The process imports numpy and the TFLite runtime, reads its resident memory, then creates the
interpreter, allocates, and runs two inferences (XNNPACK packs the weights on the first, the arena
is touched by both), and reads it again. The difference is what the runtime made resident for this
model: the model file's pages (the interpreter maps the file), the weights XNNPACK re-packs, the
tensor arena the runtime planned, and its own structures. The runtime does not report its arena
size, so this is measured rather than read; it is the host's x86 build, whose packed weights and
arena have the same sizes as the aarch64 build's up to kernel-specific padding.

device_memory() adds the camera buffers the loop holds (frames in flight under the drop policy).
The simulator's own Python, numpy and OpenCV are NOT the device's and are reported separately.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from contract.errors import UserError

__all__ = ["measure_runtime", "device_memory", "frames_in_flight"]


def _measure(paths: list[str], threads: int) -> dict:
    import numpy as np

    from contract.runtime import interpreter_class
    from device_sim.memory import rss_mb

    cls = interpreter_class()
    before = rss_mb()
    steps, keep = [], []
    for path in paths:   # in order: each model's share is what it added to the ones before
        start = rss_mb()
        interp = cls(model_path=path, num_threads=threads)
        interp.allocate_tensors()
        for d in interp.get_input_details():
            interp.set_tensor(d["index"], np.zeros(d["shape"], d["dtype"]))
        interp.invoke()
        interp.invoke()
        keep.append(interp)
        steps.append(rss_mb() - start)
    after = rss_mb()
    return {"before_mb": before, "after_mb": after, "runtime_mb": after - before, "per_model_mb": steps}


def measure_runtime(tflites: list[Path], threads: int, log=print) -> dict:
    """What _measure gives for these models loaded together, measured once per (model hashes, threads, runtime)
    and cached beside the instruction counts: resident memory varies by a page or two from one process to the
    next, and a memory budget right at its limit must not flip between two runs of the same simulation."""
    import platform

    from contract.files import sha256_file
    from contract.runtime import runtime_name, runtime_version
    from device_sim.arm.count_cache import load_cache, save_cache, seal
    from device_sim.device import cache_file

    key = "/".join([*(sha256_file(Path(t)) for t in tflites), f"threads={threads}", runtime_name(),
                    runtime_version(), platform.machine()])
    path = cache_file("footprint.json")
    cache = load_cache(path)
    if not _usable(key, cache.get(key), len(tflites)):   # never trust what this code did not write
        cache[key] = seal(key, _measure_fresh(tflites, threads))
        save_cache(path, cache, log, what="memory measurement")
    return {k: v for k, v in cache[key].items() if k != "check"}


def _usable(key: str, entry, models: int) -> bool:
    from device_sim.arm.count_cache import seal

    def mb(v) -> bool:
        return isinstance(v, (int, float)) and not isinstance(v, bool) and 0 <= v <= 1e6

    try:   # what _measure writes, and nothing else (a re-sealed edit with a negative runtime passed a budget)
        return (isinstance(entry, dict) and all(mb(entry.get(k)) for k in ("before_mb", "after_mb", "runtime_mb"))
                and abs(entry["runtime_mb"] - (entry["after_mb"] - entry["before_mb"])) < 1e-6
                and isinstance(entry.get("per_model_mb"), list) and len(entry["per_model_mb"]) == models
                and all(mb(v) for v in entry["per_model_mb"]) and seal(key, entry) == entry)
    except (ValueError, TypeError, RecursionError):   # NaN or an unserializable value: measured again
        return False


def _measure_fresh(tflites: list[Path], threads: int) -> dict:
    """Runs _measure in a fresh process (the caller's own allocations must not count)."""
    proc = subprocess.run([sys.executable, "-m", "device_sim.footprint", *map(str, tflites), "--threads", str(threads)],
                          capture_output=True, text=True, timeout=600)
    if proc.returncode != 0:
        last = (proc.stderr.strip().splitlines() or [f"exit {proc.returncode}"])[-1]
        raise UserError(f"measuring the model's device memory failed: {last[:200]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def frames_in_flight(drop_policy: str, queue_size: int) -> int:
    """Camera frames the loop holds at most: the one being processed plus what the policy keeps waiting."""
    return 1 + (1 if drop_policy == "latest" else queue_size)


def device_memory(tflites: list[Path], profile, names: list[str] | None = None) -> dict:
    """The device memory of running these models together (one, or a pipeline's stages keyed by `names`)."""
    files = [Path(t).stat().st_size / 1e6 for t in tflites]
    runtime = measure_runtime(tflites, profile.threads)
    frames = frames_in_flight(profile.drop_policy, profile.queue_size)
    camera_mb = frames * profile.camera_width * profile.camera_height * 3 / 1e6
    resident = max(runtime["runtime_mb"], sum(files))   # the mapped files are part of it
    out = {"total_mb": resident + camera_mb, "model_file_mb": sum(files),
           "runtime_mb": resident - sum(files), "camera_buffers_mb": camera_mb, "camera_frames": frames,
           "how": "fresh process: resident memory after loading, allocating and two invokes minus before "
                  "(model pages + packed weights + arena + runtime structures), plus the camera frames in flight "
                  "(RGB, the drop policy's bound); the simulator's Python, numpy and OpenCV are not counted"}
    if names is not None:
        out["models"] = {n: {"file": str(t), "model_file_mb": f, "resident_mb": max(step, f)}
                         for n, t, f, step in zip(names, tflites, files, runtime["per_model_mb"])}
    return out


def main(argv: list[str] | None = None) -> int:
    import argparse

    p = argparse.ArgumentParser(prog="python -m device_sim.footprint", description=__doc__.splitlines()[0])
    p.add_argument("models", nargs="+", help="one or more .tflite files, loaded together in this order")
    p.add_argument("--threads", type=int, default=1)
    args = p.parse_args(argv)
    print(json.dumps(_measure(args.models, args.threads)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
