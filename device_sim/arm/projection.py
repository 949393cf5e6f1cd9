"""Projected device latency from counted instructions.

    projected ms (1 thread) = instructions per inference x CPI(core kind, dtype) / clock
    projected ms (T threads) = projected ms (1 thread) / speedup(T),  speedup(T) = 1 / ((1 - p) + p / T)

Instructions are counted on qemu's model of the core (device_sim.arm.runner): the kernels XNNPACK
picks for that core's ISA and part number. CPI (cycles per instruction) is fitted per kind of core
(in-order, out-of-order) and per arithmetic (fp32, int8) on published latencies of the same runtime
library, XNNPACK (README, "Performance"), for MobileNet v1 1.0 / v2 1.0 / v3 Large / v3 Small with
random weights:
- out-of-order, fp32: Pixel (Snapdragon 821, Kryo 2.15 GHz), Pixel 2 (Snapdragon 835, Kryo 280 Gold,
  Cortex-A73-derived, 2.45 GHz), Pixel 3a (Snapdragon 670, Kryo 360 Gold, Cortex-A75-derived, 2.0 GHz),
  1 thread, 2020-03-27, counted on the cortex-a76 model; and Raspberry Pi 4 (BCM2711, 4x Cortex-A72
  at 1.5 GHz, ARM64 build, 4 threads, 2022-02-08), counted on the cortex-a72 model.
- in-order, fp32 and int8: Raspberry Pi 3 B+ (BCM2837B0, 4x Cortex-A53 at 1.4 GHz, 32-bit build,
  4 threads, 2022-02-08), counted on the cortex-a53 model.
A kind's fp32 CPI comes from its one-thread numbers where any are published (the phones), else from
the multi-thread ones. Its int8 CPI is the fp32 CPI times the int8/fp32 CPI ratio measured on the
same Raspberry Pi, network and thread count (the only published int8 numbers), so the thread
conversion below cancels in it.
A Raspberry Pi's 4-thread time becomes a one-thread time through the 4-thread speedup Pixel 2 measured
for the same network (the only published 4-core scaling); on the Raspberry Pi 4 this gives about 1.7x
the phones' fp32 CPI, which the leave-one-out table shows as -40% errors (its memory system, or a
poorer 4-thread scaling than Pixel 2's: the published data cannot tell). One CPI per kind alone does not fit: on the
A53, int8 kernels retire about 1.8x more instructions per cycle than fp32 ones (BENCHMARKS.md).
p (the parallel fraction) is fitted on the phones' multi- vs single-threaded pairs.

Leave-one-out validation (each published number predicted from a CPI fitted without it) is part of
the fit and published in BENCHMARKS.md. Known limits: the published numbers are of 2020/2022 XNNPACK
builds, ours is ai-edge-litert's; the A53 numbers are a 32-bit build; the A55 uses the A53's in-order
CPI and the A76 the A72's int8 CPI (no A55 or A76 int8 number is published), so their dot-product
gain comes from the instructions alone. A model's arithmetic comes from its card
(contract.card.card_arithmetic; its export format set it): fp16 models run fp32 kernels (the runtime's
default) and use the fp32 CPI. `make bench-arm` refits and rewrites calibration.json; the simulator and
`edgevit target` read it.
"""

from __future__ import annotations

import json
import statistics
from dataclasses import dataclass
from pathlib import Path

from contract.errors import UserError
from device_sim.arm.cores import get_core

__all__ = ["ReferenceDevice", "REFERENCE_DEVICES", "PUBLISHED", "CALIBRATION", "fit", "load_calibration",
           "project_ms", "speedup", "CALIBRATION_MODELS", "cpi", "on_profiles"]

CALIBRATION = Path(__file__).with_name("calibration.json")
SCHEMA = "edgevit.arm-calibration/3"


@dataclass(frozen=True)
class ReferenceDevice:
    name: str
    soc: str
    kind: str            # "in-order" or "out-of-order": which CPI it calibrates
    counted_on: str      # the core model whose instruction counts stand for its cores
    clock_ghz: float


REFERENCE_DEVICES = {d.name: d for d in (
    ReferenceDevice("Pixel", "Snapdragon 821, Kryo big core 2.15 GHz", "out-of-order", "cortex-a76", 2.15),
    ReferenceDevice("Pixel 2", "Snapdragon 835, Kryo 280 Gold (Cortex-A73-derived) 2.45 GHz", "out-of-order",
                    "cortex-a76", 2.45),
    ReferenceDevice("Pixel 3a", "Snapdragon 670, Kryo 360 Gold (Cortex-A75-derived) 2.0 GHz", "out-of-order",
                    "cortex-a76", 2.0),
    ReferenceDevice("RPi 3 B+", "BCM2837B0, 4x Cortex-A53 1.4 GHz (32-bit build)", "in-order", "cortex-a53", 1.4),
    ReferenceDevice("RPi 4", "BCM2711, 4x Cortex-A72 1.5 GHz (ARM64 build)", "out-of-order", "cortex-a72", 1.5),
)}

# XNNPACK README, "Performance": (device, model, dtype, threads, ms)
PUBLISHED = (
    *(("Pixel", m, "fp32", 1, ms) for m, ms in (("mobilenetv1_100", 82), ("mobilenetv2_100", 49),
                                                ("mobilenetv3_large_100", 39), ("mobilenetv3_small_100", 12))),
    *(("Pixel 2", m, "fp32", 1, ms) for m, ms in (("mobilenetv1_100", 86), ("mobilenetv2_100", 53),
                                                  ("mobilenetv3_large_100", 42), ("mobilenetv3_small_100", 14))),
    *(("Pixel 3a", m, "fp32", 1, ms) for m, ms in (("mobilenetv1_100", 88), ("mobilenetv2_100", 55),
                                                   ("mobilenetv3_large_100", 44), ("mobilenetv3_small_100", 14))),
    *(("Pixel", m, "fp32", 2, ms) for m, ms in (("mobilenetv1_100", 43), ("mobilenetv2_100", 26),
                                                ("mobilenetv3_large_100", 22), ("mobilenetv3_small_100", 7))),
    *(("Pixel 2", m, "fp32", 4, ms) for m, ms in (("mobilenetv1_100", 27), ("mobilenetv2_100", 18),
                                                  ("mobilenetv3_large_100", 16), ("mobilenetv3_small_100", 6))),
    *(("Pixel 3a", m, "fp32", 2, ms) for m, ms in (("mobilenetv1_100", 46), ("mobilenetv2_100", 28),
                                                   ("mobilenetv3_large_100", 24), ("mobilenetv3_small_100", 8))),
    *(("RPi 3 B+", m, d, 4, ms) for m, d, ms in (
        ("mobilenetv1_100", "fp32", 114), ("mobilenetv2_100", "fp32", 79), ("mobilenetv3_large_100", "fp32", 67),
        ("mobilenetv3_small_100", "fp32", 22), ("mobilenetv1_100", "int8", 46), ("mobilenetv2_100", "int8", 30))),
    *(("RPi 4", m, d, 4, ms) for m, d, ms in (
        ("mobilenetv1_100", "fp32", 77), ("mobilenetv2_100", "fp32", 46), ("mobilenetv3_large_100", "fp32", 40),
        ("mobilenetv3_small_100", "fp32", 15), ("mobilenetv1_100", "int8", 24), ("mobilenetv2_100", "int8", 17))),
)
CALIBRATION_MODELS = ("mobilenetv1_100", "mobilenetv2_100", "mobilenetv3_large_100", "mobilenetv3_small_100")
FLOAT, INTEGER = "fp32", "int8"   # the arithmetic of the published numbers (contract.card.ARITHMETICS)
FOUR_THREAD_REFERENCE = "Pixel 2"   # whose measured 4-thread speedups turn the RPi's 4-thread times into 1 thread


def speedup(threads: int, p: float) -> float:
    return 1.0 / ((1.0 - p) + p / threads)


def _one_thread_points(published) -> list[dict]:
    """Every published latency as a one-thread time: the phones' single-thread rows as they are, the
    RPi's 4-thread rows times Pixel 2's 4-thread speedup of the same network."""
    by = {(d, m, dt, t): ms for d, m, dt, t, ms in published}
    points = []
    for (dev, model, dtype, threads), ms in by.items():
        device = REFERENCE_DEVICES[dev]
        if threads != 1 and (dev, model, dtype, 1) in by:
            continue   # a phone's multi-thread row: it fits p, not the CPI
        if threads == 1:
            one, how = ms, "published, 1 thread"
        else:
            ref1, ref4 = by[(FOUR_THREAD_REFERENCE, model, FLOAT, 1)], by[(FOUR_THREAD_REFERENCE, model, FLOAT, 4)]
            one = ms * ref1 / ref4
            how = f"published {threads}-thread x {FOUR_THREAD_REFERENCE}'s speedup {ref1 / ref4:.2f}"
        points.append({"device": dev, "model": model, "dtype": dtype, "published_ms": ms, "threads": threads,
                       "one_thread_ms": one, "how": how, "kind": device.kind, "counted_on": device.counted_on,
                       "clock_ghz": device.clock_ghz})
    return points


def fit(counts: dict, published=PUBLISHED) -> dict:
    """counts: {"model/dtype/core": instructions per inference}. Returns the calibration (CPI per kind of
    core and arithmetic, the parallel fraction) and every published point's leave-one-out prediction:
    the whole fit redone without that point."""
    points = _one_thread_points(published)
    for pt in points:
        key = f"{pt['model']}/{pt['dtype']}/{pt['counted_on']}"
        if key not in counts:
            raise ValueError(f"no instruction count for {key}")
        pt["instructions"] = counts[key]
        pt["cpi"] = pt["one_thread_ms"] * 1e6 * pt["clock_ghz"] / pt["instructions"]
    groups = _cpis(points)
    for pt in points:
        rest = _cpis([q for q in points if q is not pt]).get(f"{pt['kind']}/{pt['dtype']}")
        pt["loo_ms"] = None if rest is None else pt["instructions"] * rest["cpi"] / (pt["clock_ghz"] * 1e6)
        pt["loo_error"] = None if rest is None else pt["loo_ms"] / pt["one_thread_ms"] - 1.0
    errors = [abs(pt["loo_error"]) for pt in points if pt["loo_error"] is not None]
    return {"schema": SCHEMA, "cpi": groups, "parallel_fraction": _parallel_fraction(published),
            "points": points, "loo_median_abs_error": statistics.median(errors), "loo_max_abs_error": max(errors)}


def _cpis(points: list[dict]) -> dict:
    """Per kind of core: the fp32 CPI is the median over its fp32 points, using only the numbers published
    for one thread when the kind has any (a 4-thread number turned into one thread carries the
    conversion's error); the int8 CPI is that times the median int8/fp32 CPI ratio of the same network on
    the same device at the same threads (where the thread conversion cancels)."""
    groups = {}
    for kind in sorted({pt["kind"] for pt in points}):
        floats = [pt for pt in points if pt["kind"] == kind and pt["dtype"] == FLOAT]
        single = [pt for pt in floats if pt["threads"] == 1]
        ref = single or floats
        if not ref:
            continue
        base = statistics.median(pt["cpi"] for pt in ref)
        groups[f"{kind}/{FLOAT}"] = {"cpi": base, "points": len(ref), "devices": sorted({pt["device"] for pt in ref})}
        by = {(pt["device"], pt["model"], pt["dtype"]): pt for pt in points if pt["kind"] == kind}
        pairs = [(pt, by[(pt["device"], pt["model"], FLOAT)]) for pt in by.values()
                 if pt["dtype"] == INTEGER and (pt["device"], pt["model"], FLOAT) in by]
        if pairs:
            r = statistics.median(a["cpi"] / b["cpi"] for a, b in pairs)
            groups[f"{kind}/{INTEGER}"] = {"cpi": base * r, "int8_over_fp32": r, "points": len(pairs),
                                      "devices": sorted({a["device"] for a, _ in pairs})}
    return groups


def _parallel_fraction(published) -> float:
    """Amdahl's p from each phone's T-thread vs 1-thread time of the same network: median."""
    by = {(d, m, dt, t): ms for d, m, dt, t, ms in published}
    ps = [(1.0 - ms / by[(d, m, dt, 1)]) / (1.0 - 1.0 / t) for (d, m, dt, t), ms in by.items()
          if t > 1 and (d, m, dt, 1) in by]
    return statistics.median(ps)


def load_calibration(path: Path = CALIBRATION) -> dict:
    try:
        cal = json.loads(Path(path).read_text())
    except (OSError, ValueError) as e:
        raise UserError(f"ARM latency calibration {path} is missing or unreadable ({e}); "
                        "run `make bench-arm`") from None
    if cal.get("schema") != SCHEMA:
        raise UserError(f"{path} is not an {SCHEMA} file; run `make bench-arm` to rewrite it")
    return cal


def cpi(core: str, arithmetic: str, calibration: dict) -> float:
    """Cycles per instruction of a model's `arithmetic` (its card's, contract.card.card_arithmetic) on the
    core's kind."""
    kind = get_core(core).kind
    group = calibration["cpi"].get(f"{kind}/{arithmetic}")
    if group is None:
        raise UserError(f"the ARM latency calibration has no CPI for {arithmetic} arithmetic on {kind} cores (it has "
                        f"{', '.join(sorted(calibration['cpi']))}); its latency cannot be projected")
    return group["cpi"]


def project_ms(instructions: float, core: str, clock_ghz: float, threads: int = 1, calibration: dict | None = None,
               *, arithmetic: str = FLOAT) -> float:
    """Projected latency in ms of an inference of `instructions` (counted on `core`) at `clock_ghz`, computing
    in `arithmetic`."""
    cal = calibration or load_calibration()
    one = instructions * cpi(core, arithmetic, cal) / (clock_ghz * 1e6)
    return one / speedup(threads, cal["parallel_fraction"])


def on_profiles(instructions: float, core: str, arithmetic: str, calibration: dict | None = None) -> dict:
    """Projected latency on every built-in profile whose device has this core: 1 thread and the profile's."""
    from device_sim.profiles import builtin_profiles, load_profile

    cal = calibration or load_calibration()
    rows = {}
    for name in builtin_profiles():
        prof = load_profile(name)
        if prof.core == core:
            rows[name] = {"clock_ghz": prof.clock_ghz, "threads": prof.threads,
                          "one_thread_ms": project_ms(instructions, core, prof.clock_ghz, 1, cal,
                                                      arithmetic=arithmetic),
                          "profile_threads_ms": project_ms(instructions, core, prof.clock_ghz, prof.threads, cal,
                                                           arithmetic=arithmetic)}
    return rows
