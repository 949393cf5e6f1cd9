"""`make bench-arm`: the ARM part of the benchmarks (about 30 min on 2 cores).

Exports the family, the MobileNets, the compute ceiling and the edgevit_xs design variants at 224x224
(fp32 + int8, latency-ready random weights, as `make bench`), counts instructions per steady-state
inference of each on the aarch64 runtime under qemu for the cortex-a53, -a55 and -a76 core models
(device_sim.arm), refits the latency projection on XNNPACK's published MobileNet latencies with
leave-one-out validation (device_sim.arm.projection), evaluates the ARM goals, and writes
benchmarks/results/arm-<date>-<host>.json, device_sim/arm/calibration.json and BENCHMARKS.md's
ARM section.

    python -m benchmarks.arm                  # everything (needs `make arm-setup`)
    python -m benchmarks.arm --work /tmp/w    # keep (and reuse) the exported models
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import threading
import time
from datetime import UTC, datetime
from pathlib import Path
from queue import Queue

import numpy as np

from benchmarks.report import results_path
from benchmarks.run import ROOT, host_info, log

CORES = ("cortex-a53", "cortex-a55", "cortex-a76")
FAMILY = ("edgevit_xxs", "edgevit_xs", "edgevit_s", "mobilenetv2_100", "mobilenetv1_100", "mobilenetv3_large_100",
          "mobilenetv3_small_100")
DESIGN_CORES = ("cortex-a53", "cortex-a55")
GOAL1_RATIO = 0.8          # edgevit_xs int8 <= 0.8x MobileNetV2 int8 on the A53- and A55-class profiles
GOAL_PROFILES = ("smartwatch", "ar-glasses")   # their cores: cortex-a53, cortex-a55


def _jobs() -> list[tuple[str, dict, tuple[str, ...]]]:
    """(artifact name, how to build it, cores to count its int8 (and fp32) on)."""
    from benchmarks.run import DESIGNS
    from device_sim.arm.projection import CALIBRATION_MODELS

    # the calibration networks also on the Raspberry Pi 4's core (its published numbers calibrate the projection)
    jobs = [(name, {"model": name}, CORES + (("cortex-a72",) if name in CALIBRATION_MODELS else ())) for name in FAMILY]
    jobs.append(("ceiling", {"ceiling": True}, CORES))
    jobs += [(f"design-{d}", {"model": "edgevit_xs", "options": o}, DESIGN_CORES)
             for d, o in DESIGNS.items() if d != "default"]
    return jobs


def _export_one(name: str, spec: dict, work: Path, calib) -> dict:
    import torch

    from benchmarks.models import Ceiling, latency_ready, natural_images
    from benchmarks.run import _export, _graph

    if (work / name / "int8" / "model.json").is_file():
        return json.loads((work / name / "info.json").read_text())
    torch.manual_seed(0)
    if spec.get("ceiling"):
        model, size, images = Ceiling().eval(), 56, natural_images(16, 56)
    else:
        import edgevit

        model = latency_ready(edgevit.create_model(spec["model"], num_classes=1000, img_size=224,
                                                   **spec.get("options", {})), calib)
        size, images = 224, calib
    from edgevit.info import count_macs

    report = _export(model, size, work / name, "fp32,int8", images, name=name)
    info = {"gmacs": count_macs(model, size) / 1e9, "graph": _graph(report)}
    (work / name / "info.json").write_text(json.dumps(info))
    return info


def _count(env, name: str, fmt: str, core: str, work: Path) -> float:
    from contract.card import read_card
    from device_sim.arm.cores import get_core
    from device_sim.arm.runner import instructions_per_inference

    art = work / name / fmt
    card, _ = read_card(art)
    x = np.random.default_rng(0).integers(0, 256, (1, *card["input"]["shape"])).astype(card["input"]["dtype"])
    return instructions_per_inference(env, get_core(core), art / "model.tflite", x, invokes=1)["per_inference"]


def collect(work: Path) -> dict:
    """Exports on this thread while a second thread counts what is exported (two cores, two jobs)."""
    from benchmarks.models import natural_images
    from device_sim.arm.runner import find_env

    env = find_env(None)
    calib = natural_images(64, 224)
    todo: Queue = Queue()
    done = work / "counts-steady.json"   # counts of an earlier run (same --work, same counting method) are reused
    counts = json.loads(done.read_text()) if done.is_file() else {}
    reused = len(counts)
    models, errors = {}, []

    def counter() -> None:
        while (job := todo.get()) is not None:
            name, cores = job
            for fmt in ("int8",) if name.startswith("design-") else ("fp32", "int8"):   # variants: int8 only
                for core in cores:
                    if f"{name}/{fmt}/{core}" in counts:
                        continue
                    try:
                        t0 = time.perf_counter()
                        counts[f"{name}/{fmt}/{core}"] = n = _count(env, name, fmt, core, work)
                        took = time.perf_counter() - t0
                        log(f"  {name} {fmt} on {core}: {n / 1e6:.1f} M instructions ({took:.0f} s)")
                        done.write_text(json.dumps(counts))
                    except Exception as e:   # noqa: BLE001 - reported, the run goes on
                        errors.append(f"{name}/{fmt}/{core}: {e}")

    thread = threading.Thread(target=counter, name="count")
    thread.start()
    try:
        for name, spec, cores in _jobs():
            log(f"export {name}")
            models[name] = _export_one(name, spec, work, calib)
            todo.put((name, cores))
    finally:
        todo.put(None)
        thread.join()
    if errors:
        raise SystemExit("bench-arm: counting failed: " + "; ".join(errors))
    return {"counts": counts, "models": models, "versions": env.versions(), "reused_counts": reused}


def projections(counts: dict, calibration: dict) -> dict:
    """Projected ms of every counted artifact on every built-in ARM profile's core, clock and threads."""
    from device_sim.arm.projection import on_profiles
    from device_sim.profiles import builtin_profiles, load_profile
    from export.formats import FORMATS

    out = {name: {"core": p.core, "clock_ghz": p.clock_ghz, "threads": p.threads, "models": {}}
           for name, p in ((n, load_profile(n)) for n in builtin_profiles()) if p.core != "host"}
    for key, n in counts.items():
        name, fmt, core = key.split("/")
        for pname, row in on_profiles(n, core, FORMATS[fmt].arithmetic, calibration).items():
            out[pname]["models"][f"{name}/{fmt}"] = {k: row[k] for k in ("one_thread_ms", "profile_threads_ms")}
    return out


def evaluate(counts: dict, proj: dict) -> list[dict]:
    goals = []
    for pname in GOAL_PROFILES:
        rows = proj[pname]["models"]
        xs, mb = rows["edgevit_xs/int8"]["one_thread_ms"], rows["mobilenetv2_100/int8"]["one_thread_ms"]
        goals.append({"id": "1-arm", "profile": pname, "core": proj[pname]["core"], "edgevit_xs_int8_ms": xs,
                      "mobilenetv2_int8_ms": mb, "ratio": xs / mb, "target": GOAL1_RATIO,
                      "met": xs / mb <= GOAL1_RATIO})
    for core in CORES:
        xs = counts[f"edgevit_xs/int8/{core}"] / counts[f"edgevit_xs/fp32/{core}"]
        ceil = counts[f"ceiling/int8/{core}"] / counts[f"ceiling/fp32/{core}"]
        mb = counts[f"mobilenetv2_100/int8/{core}"] / counts[f"mobilenetv2_100/fp32/{core}"]
        goals.append({"id": "2-arm", "core": core, "edgevit_xs_int8_over_fp32": xs, "ceiling_int8_over_fp32": ceil,
                      "mobilenetv2_int8_over_fp32": mb, "bound": 1.1 * ceil, "met": xs <= 1.1 * ceil})
    return goals


def designs(counts: dict) -> list[dict]:
    rows = [{"name": "default", **{c: counts[f"edgevit_xs/int8/{c}"] for c in DESIGN_CORES}}]
    rows += [{"name": k.split("/")[0].removeprefix("design-"), **{c: counts[f"{k.split('/')[0]}/int8/{c}"]
                                                                   for c in DESIGN_CORES}}
             for k in counts if k.startswith("design-") and k.endswith(f"/int8/{DESIGN_CORES[0]}")]
    for r in rows:
        r["vs_default"] = {c: r[c] / rows[0][c] for c in DESIGN_CORES}
    return rows


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.arm", description=__doc__.splitlines()[0])
    p.add_argument("--work", default=None, help="folder for the exported models (kept and reused; default: temp)")
    p.add_argument("--out", default=None, help="folder for the JSON and BENCHMARKS.md (default: the repo)")
    args = p.parse_args(argv)
    from contract.files import write_json
    from device_sim.arm.projection import CALIBRATION, fit

    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="edgevit-bench-arm-") as tmp:
        res = collect(Path(args.work or tmp))
    calibration = fit(res["counts"])
    res.update(schema="edgevit.benchmarks-arm/1", created=datetime.now(UTC).isoformat(timespec="seconds"),
               host=host_info(), calibration=calibration)
    res["projections"] = projections(res["counts"], calibration)
    res["goals"], res["designs"] = evaluate(res["counts"], res["projections"]), designs(res["counts"])
    res["seconds"] = time.perf_counter() - t0
    out = Path(args.out) if args.out else ROOT
    json_path = results_path(out, "arm-", res)
    write_json(json_path, res)
    write_json(out / CALIBRATION.relative_to(ROOT) if args.out else CALIBRATION,
               {**calibration, "created": res["created"], "versions": res["versions"], "results": json_path.name})
    from benchmarks.report import rerender

    md = rerender(out)
    log(f"projection: leave-one-out median |error| {100 * calibration['loo_median_abs_error']:.1f}% "
        f"(max {100 * calibration['loo_max_abs_error']:.1f}%) over {len(calibration['points'])} published latencies")
    for g in res["goals"]:
        log(f"goal {g['id']} {g.get('profile', g.get('core'))}: {'met' if g['met'] else 'NOT met'} "
            f"({g.get('ratio', g.get('edgevit_xs_int8_over_fp32')):.2f})")
    log(f"wrote {json_path}, {CALIBRATION.name}, {md} in {res['seconds'] / 60:.1f} min")
    return 0


if __name__ == "__main__":
    sys.exit(main())
