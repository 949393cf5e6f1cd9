"""Budgets: what a device profile limits, how each is measured and how it is reported.

Each budget is one `Budget` registered by `register_budget`. The profile schema's [budgets] section,
the budget table, report.json and the plots' limit lines are all driven from this registry, so a new
budget is one object (here or in any module imported before the profile is loaded):

    register_budget(Budget(key="preprocess_p95_ms", title="preprocess p95", unit="ms", plot="latency",
                           how="95th percentile of the per-frame preprocessing time",
                           measure=lambda run: run.percentile([r.preprocess_ms for r in run.records], 95)))
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from device_sim.frames import stage_column

__all__ = ["Budget", "RunFacts", "BUDGETS", "STAGE_BUDGETS", "register_budget", "check_budgets", "check_stage_budgets",
           "budget_table"]


@dataclass(frozen=True)
class RunFacts:
    """What a finished run measured; budgets read their value from it."""
    records: object                     # device_sim.frames.FrameTable: iterate it for FrameRecords
    memory_mb: dict                     # before_load_mb, after_allocate_mb, peak_mb, ...
    model_size_mb: float
    latency_percentile: float           # the profile's percentile for latency budgets
    device: str                         # how latency was timed: "projected", "fixed" or "host" (device_sim.device)
    extra: dict = field(default_factory=dict)

    @staticmethod
    def percentile(values, pct: float) -> float | None:
        values = list(values)
        return float(np.percentile(np.asarray(values, dtype=np.float64), pct)) if values else None


@dataclass(frozen=True)
class Budget:
    key: str                                   # the profile's [budgets] key that holds the limit
    title: str                                 # the table's row name; may use {pct} and {device}
    unit: str                                  # "ms", "MB", ...
    how: str                                   # how it is measured (written into report.json)
    measure: Callable[[RunFacts], float | None]
    required: bool = False                     # must every profile set it?
    plot: str | None = None                    # "latency" or "memory": draw the limit on that plot
    default: float | None = None               # the limit when a profile does not set it (None: unchecked)

    def __post_init__(self):
        if not self.key.isidentifier():
            raise ValueError(f"budget key {self.key!r} must be a TOML-friendly identifier")
        if not self.unit or not self.how:
            raise ValueError(f"budget {self.key!r} needs a unit and a description of how it is measured")


BUDGETS: dict[str, Budget] = {}


def register_budget(budget: Budget) -> Budget:
    if budget.key in BUDGETS:
        raise ValueError(f"budget {budget.key!r} registered twice")
    BUDGETS[budget.key] = budget
    return budget


register_budget(Budget(
    key="latency_ms", title="latency p{pct:g} (end-to-end, {device})", unit="ms", required=True, plot="latency",
    how="percentile (the profile's latency_percentile) of capture-to-result time per processed frame, on the "
        "simulated device (projected for the profile's core unless the device is 'host')",
    measure=lambda run: run.percentile((r.e2e_ms for r in run.records), run.latency_percentile)))
register_budget(Budget(
    key="memory_mb", title="device memory (model+runtime+camera)", unit="MB", required=True, plot="memory",
    how="device_sim.footprint: model file + what the runtime makes resident for it (packed weights, arena) in a "
        "process holding nothing else + the camera frames in flight; the simulator's Python is not counted",
    measure=lambda run: run.memory_mb.get("device", {}).get("total_mb")))
register_budget(Budget(
    key="model_size_mb", title="model file size", unit="MB", required=True,
    how="size of the .tflite file", measure=lambda run: run.model_size_mb))
register_budget(Budget(
    key="invalid_output_frames", title="frames with invalid outputs", unit="frames", default=0.0,
    how="processed frames whose model output held NaN or infinity (a broken model or input), or gave a region no "
        "crop can be taken of (non-finite, under a pixel, or past 16 frame sizes: a wrong decode or crop section)",
    measure=lambda run: float(sum(not r.valid for r in run.records))))


def check_budgets(limits: dict[str, float], run: RunFacts) -> list[dict]:
    """One row per budget the profile sets: measured value, limit, pass. A budget that cannot be
    measured (no frames) fails."""
    rows = []
    defaults = {k: b.default for k, b in BUDGETS.items() if b.default is not None}
    for key, limit in {**limits, **{k: v for k, v in defaults.items() if k not in limits}}.items():
        b = BUDGETS[key]
        value = b.measure(run)
        ok = value is not None and math.isfinite(value) and value <= limit
        rows.append({"budget": key, "title": b.title.format(pct=run.latency_percentile,
                                                            device=run.device),
                     "unit": b.unit, "limit": limit, "value": value, "pass": ok, "how": b.how, "plot": b.plot})
    return rows


STAGE_BUDGETS = {   # a pipeline stage's [stage.budgets] keys: (title, unit, how)
    "latency_ms": ("{stage}: time per frame p{pct:g} ({device})", "ms",
                   "percentile (the profile's latency_percentile) of the stage's time per frame (all its invocations: "
                   "pre-processing, inference, decoding) over the frames it ran on, on the simulated device"),
    "memory_mb": ("{stage}: device memory", "MB",
                  "what loading, allocating and running the stage's model added to the device's memory "
                  "(device_sim.footprint, all the pipeline's models in one process, in stage order)"),
}


def check_stage_budgets(stages: dict[str, dict], run: RunFacts) -> list[dict]:
    """One row per limit in a pipeline stage's [stage.budgets] (stage name -> {key: limit}). The stage's
    columns (<stage>_ms, <stage>_runs) come from device_sim.stages; its memory from the device memory's
    per-model rows (run.memory_mb["device"]["models"], keyed by stage)."""
    rows = []
    models = run.memory_mb.get("device", {}).get("models", {})
    for stage, limits in stages.items():
        for key, limit in limits.items():
            title, unit, how = STAGE_BUDGETS[key]
            if key == "latency_ms":
                value = run.percentile([r.columns[stage_column(stage, "ms")] for r in run.records
                                        if r.columns.get(stage_column(stage, "runs"), 0) > 0], run.latency_percentile)
            else:
                value = models.get(stage, {}).get("resident_mb")
            # a stage that never ran (nothing to crop around) has no time to judge: not checked, not failed
            skipped = value is None and key == "latency_ms"
            ok = None if skipped else (value is not None and math.isfinite(value) and value <= limit)
            rows.append({"budget": f"{stage}.{key}", "title": title.format(stage=stage, pct=run.latency_percentile,
                                                                         device=run.device),
                         "unit": unit, "limit": limit, "value": value, "pass": ok, "how": how, "plot": None,
                         "skipped": skipped})
    return rows


def budget_table(rows: list[dict], profile_name: str) -> str:
    lines = [f"budgets of profile {profile_name}:", f"  {'budget':<40} {'measured':>12} {'limit':>12}  result"]
    for r in rows:
        value = "n/a" if r["value"] is None else f"{r['value']:.2f} {r['unit']}"
        limit = f"{r['limit']:.2f} {r['unit']}"
        result = "not run" if r.get("skipped") else "PASS" if r["pass"] else "FAIL"
        lines.append(f"  {r['title']:<40} {value:>12} {limit:>12}  {result}")
    return "\n".join(lines)
