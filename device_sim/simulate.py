"""One simulation run: load the model from its sidecar, open the camera, run the frame loop, check
the profile's budgets, write report.json, frames.csv, latency.png, memory.png and demo.mp4.

Exit codes: 0 all budgets met, 3 a budget exceeded, 4 the source failed mid-stream (the report is
written and marked partial).
"""

from __future__ import annotations

import dataclasses
import os
import sys
import time
from pathlib import Path

import numpy as np

from device_sim.budgets import budget_table, check_budgets
from device_sim.camera import open_source
from device_sim.errors import SimError
from device_sim.loop import run_loop
from device_sim.memory import peak_rss_mb, rss_mb
from device_sim.model import DeployedModel, resolve_sidecar
from device_sim.profiles import check_override
from device_sim.report import host_info, write_frames_csv, write_json
from device_sim.runtime import runtime_version
from device_sim.stats import summarize

__all__ = ["simulate", "EXIT_OK", "EXIT_BUDGET", "EXIT_SOURCE_FAILED"]

EXIT_OK, EXIT_BUDGET, EXIT_SOURCE_FAILED = 0, 3, 4


def _progress(total: int | None, enabled: bool):
    try:
        from tqdm import tqdm
    except ImportError:  # pragma: no cover - tqdm is optional on a device
        return None
    return tqdm(total=total, unit="frame", disable=None if enabled else True, dynamic_ncols=True, leave=False)


def simulate(model_path, profile, *, out: Path, source: str = "synthetic", samples: Path | None = None,
             duration_s: float | None = 20.0, max_frames: int | None = None, max_speed: bool = False,
             video: bool = True, plots: bool = True, seed: int = 0, progress: bool = True,
             log=print) -> tuple[int, dict]:
    if duration_s is not None and duration_s <= 0 or max_frames is not None and max_frames < 1:
        raise SimError("--duration must be > 0 and --frames >= 1")
    sidecar = resolve_sidecar(model_path)
    threads = min(profile.threads, os.cpu_count() or profile.threads)
    if threads < profile.threads:
        log(f"note: profile asks for {profile.threads} threads; this host has {os.cpu_count()} cores, using {threads}")
    out = Path(out)
    memory = {"before_load_mb": rss_mb()}
    model = DeployedModel.load(sidecar, threads=threads)
    memory["after_allocate_mb"] = rss_mb()
    samples = samples or sidecar.parent.parent / "samples.npz"
    cam = open_source(source, width=profile.camera_width, height=profile.camera_height, samples=Path(samples),
                      labels=model.labels, seed=seed)
    _check_writable(out)
    mode = "max-speed" if max_speed else f"real-time {profile.fps:g} fps, drop policy {profile.drop_policy}"
    log(f"simulating {model.sidecar.get('name', '?')} [{model.sidecar.get('format', '?')}] on {profile.name}: "
        f"{profile.camera_width}x{profile.camera_height} {cam.name}, {mode}, {threads} thread(s), "
        f"slowdown x{profile.slowdown:g} (emulated)")
    expected = max_frames or (None if duration_s is None or max_speed else int(duration_s * profile.fps))
    reference_s = 0.0
    if profile.slowdown > 1.0:
        rgb = np.full((1, model.height, model.width, 3), 128, np.uint8)
        reference_s = model.warm_reference(model.to_input(rgb))
    bar = _progress(expected, progress)
    on_frame = (lambda rec: bar.update(1)) if bar is not None else None
    try:
        result = run_loop(model, cam, profile, duration_s=duration_s, max_frames=max_frames, max_speed=max_speed,
                          reference_s=reference_s, on_frame=on_frame)
    finally:
        if bar is not None:
            bar.close()
    recs = result.records
    if not recs:
        cam.close()
        raise SimError(f"no frame was processed ({result.stop_reason}); nothing to report")
    sampled_peak = max(r.rss_mb for r in recs)
    memory.update(peak_mb=max(peak_rss_mb(), sampled_peak), loop_peak_sampled_mb=sampled_peak,
                  model_arena_mb=memory["after_allocate_mb"] - memory["before_load_mb"])
    e2e = [r.e2e_ms for r in recs]
    e2e_stats = summarize(e2e)
    budgets = check_budgets(profile, e2e_ms=e2e, peak_memory_mb=memory["peak_mb"], model_size_mb=model.size_mb)
    labelled = [r for r in recs if r.correct is not None]
    span = recs[-1].capture_s - recs[0].capture_s
    report = {
        "partial": result.failed, "stop_reason": result.stop_reason,
        "frames": {"captured": result.captured, "processed": len(recs), "dropped": result.dropped},
        "mode": "max-speed" if max_speed else "real-time",
        "profile": profile.as_dict(), "threads_used": threads,
        "model": {k: model.sidecar.get(k) for k in ("name", "format", "file", "sha256", "labels", "input", "output")}
        | {"path": str(model.tflite), "size_mb": model.size_mb, "init_ms": model.init_seconds * 1e3},
        "host": host_info(), "runtime": runtime_version(), "source": cam.name,
        "emulation": {"slowdown": profile.slowdown, "host_reference_ms": reference_s * 1e3,
                      "note": "inference on the target = host time + (slowdown - 1) x host_reference_ms"},
        "latency_ms": {
            "end_to_end": e2e_stats,
            "inference_emulated": summarize(r.inference_ms for r in recs),
            "inference_host": summarize(r.inference_host_ms for r in recs),
            "preprocess": summarize(r.preprocess_ms for r in recs),
            "postprocess": summarize(r.postprocess_ms for r in recs),
            "queue": summarize(r.queue_ms for r in recs),
            "overhead": summarize(r.e2e_ms - r.inference_ms for r in recs),
        },
        "jitter_ms": e2e_stats["jitter"],
        "achieved_fps": (len(recs) - 1) / span if span > 0 else None,
        "drop_rate": result.dropped / result.captured if result.captured else 0.0,
        "deadline_miss_rate": float(np.mean([not r.deadline_met for r in recs])),
        "accuracy": float(np.mean([r.correct for r in labelled])) if labelled else None,
        "labelled_frames": len(labelled),
        "memory_mb": memory, "budgets": budgets, "pass": all(b["pass"] for b in budgets),
        "wall_seconds": result.wall_s,
    }
    out.mkdir(parents=True, exist_ok=True)
    outputs = {"report": out / "report.json", "frames": out / "frames.csv"}
    write_frames_csv(outputs["frames"], [r.as_row() for r in recs])
    title = (f"{model.sidecar.get('name')} {model.sidecar.get('format')} on {profile.name} "
             f"(host latency x{profile.slowdown:g} emulated, {threads} thr)")
    if plots:
        from device_sim.plots import plot_latency, plot_memory

        outputs["latency_plot"], outputs["memory_plot"] = out / "latency.png", out / "memory.png"
        plot_latency(outputs["latency_plot"], recs, profile, title)
        plot_memory(outputs["memory_plot"], recs, profile, memory, title)
    if video:
        from device_sim.video import write_video

        t0 = time.perf_counter()
        # plays at the rate results came out in real time; at --max-speed, at the camera's rate
        video_fps = profile.fps if max_speed or not report["achieved_fps"] else report["achieved_fps"]
        written = write_video(out / "demo.mp4", cam, recs, model.labels, profile.latency_ms,
                              round(min(max(video_fps, 1.0), profile.fps), 2))
        report["video_frames"] = written
        if written:
            outputs["video"] = out / "demo.mp4"
            log(f"demo.mp4: {written} frames in {time.perf_counter() - t0:.1f} s")
    cam.close()
    report["outputs"] = {k: str(v) for k, v in outputs.items()}
    write_json(outputs["report"], report)
    _print_summary(report, profile, log)
    code = EXIT_SOURCE_FAILED if result.failed else EXIT_OK if report["pass"] else EXIT_BUDGET
    return code, report


def _print_summary(report: dict, profile, log) -> None:
    lat = report["latency_ms"]
    frames = report["frames"]
    acc = report["accuracy"]
    log(f"frames: {frames['processed']} processed, {frames['dropped']} dropped of {frames['captured']} captured "
        f"({report['stop_reason']}){'  [PARTIAL]' if report['partial'] else ''}")
    log(f"latency ms  end-to-end p50 {lat['end_to_end']['p50']:.2f}  p95 {lat['end_to_end']['p95']:.2f}  |  "
        f"inference p50 host {lat['inference_host']['p50']:.2f}, emulated {lat['inference_emulated']['p50']:.2f}  |  "
        f"{report['achieved_fps'] or 0:.1f} fps")
    log(f"accuracy {'n/a' if acc is None else f'{acc:.4f}'} on {report['labelled_frames']} labelled frames; "
        f"peak RSS {report['memory_mb']['peak_mb']:.1f} MB")
    log(budget_table(report["budgets"], profile.name))
    for key, path in report["outputs"].items():
        log(f"  {key:<13} {path}")
    sys.stdout.flush()


def _check_writable(out: Path) -> None:
    """Fail before the run, without creating anything, if the output folder cannot be written."""
    probe = out
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    if not probe.is_dir() or not os.access(probe, os.W_OK):
        raise SimError(f"cannot write to output folder {out} ({probe} is not a writable folder); choose another --out")


def apply_overrides(profile, **overrides):
    """A copy of the profile with the CLI's explicit overrides (None = keep), validated like the TOML."""
    changes = {k: v for k, v in overrides.items() if v is not None}
    for name, value in changes.items():
        check_override(name, value)
    return dataclasses.replace(profile, **changes)
