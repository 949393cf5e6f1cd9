"""One simulation run: load the model from its card, open the camera, run the frame loop, check the
profile's budgets, write report.json, frames.csv, latency.png, memory.png and demo.mp4.

Exit codes (contract.errors): 0 all budgets met, 3 a budget exceeded, 4 the source failed mid-stream
(the report is written and marked partial).
"""

from __future__ import annotations

import dataclasses
import math
import os
import sys
import time
from pathlib import Path

import numpy as np

from contract.card import SAMPLE_PACK, is_bare_tflite, resolve_card
from contract.errors import EXIT_OK, EXIT_SOURCE_FAILED, EXIT_TARGETS_MISSED, UserError
from contract.files import check_writable, path_problem, write_json
from contract.outputs import (
    HeldSignals,
    check_output_folder,
    deferred_signals,
    discard,
    folder_lock,
    make_staging,
    publish,
    resolve_out,
)
from contract.runtime import runtime_version
from device_sim.budgets import RunFacts, budget_table, check_budgets, check_stage_budgets
from device_sim.device import device_timing
from device_sim.footprint import device_memory
from device_sim.loop import MAX_BAD_FRAMES, run_loop
from device_sim.memory import peak_rss_mb, rss_mb
from device_sim.model import BareModel, DeployedModel
from device_sim.pipelines import load_pipeline
from device_sim.profiles import check_override
from device_sim.report import host_info, write_frames_csv
from device_sim.sources import open_source
from device_sim.stages import load_stage_models
from device_sim.stats import summarize

__all__ = ["simulate", "apply_overrides", "DEFAULT_DURATION_S"]

DEFAULT_DURATION_S = 20.0
MAX_DURATION_S = 7 * 24 * 3600.0
OUTPUT_KIND = "simulate"        # what contract.outputs records as the writer of the output folder
OUTPUT_FILES = ("report.json", "frames.csv", "latency.png", "memory.png", "demo.mp4")


def simulate(model_path, profile, *, out: Path, pipeline=None, source: str | None = None, samples: Path | None = None,
             duration_s: float | None = DEFAULT_DURATION_S, max_frames: int | None = None, max_speed: bool = False,
             realtime: bool = False, video: bool = True, plots: bool = True, seed: int = 0, progress: bool = True,
             force: bool = False, max_bad_frames: int = MAX_BAD_FRAMES, bare: BareModel | None = None,
             log=print) -> tuple[int, dict]:
    """duration_s=None and max_frames=None: run until the source ends. Returns (exit code, report).
    `model_path`: an export folder / model.json, or any .tflite (described by `bare` when it has no card);
    or `pipeline` (a pipeline file or built-in name, device_sim.pipelines) with model_path None.
    source None: the export's sample pack ("synthetic"), or a camera on a photograph ("photo") for a bare
    .tflite or a pipeline, which have none.
    The loop runs on the device's virtual clock (device_sim.loop) unless `realtime` or the source is live
    (a camera), which pace frames on the wall clock.
    Everything is checked before the first frame; outputs are built in a staging folder and swapped in
    whole (contract.outputs), so `out` never mixes two runs. Ctrl-C / SIGTERM in the loop: the frames so
    far are written as a partial report (no video), then the KeyboardInterrupt is re-raised."""
    _check_stop_rule(duration_s, max_frames, max_bad_frames)
    if realtime and max_speed:
        raise UserError("--realtime paces frames at the camera's rate and --max-speed takes them back to back: "
                        "give one of them")
    out = resolve_out(out)
    if (model_path is None) == (pipeline is None):
        raise UserError("give a model (--model) or a pipeline (--pipeline), one of them")
    spec = load_pipeline(pipeline) if pipeline is not None else None
    model_path, card_path, source, pack = _locate(None if spec else Path(model_path), source, samples)
    check_writable(out)
    check_output_folder(out, kind=OUTPUT_KIND, force=force, expect=OUTPUT_FILES)
    threads = _host_threads(profile, log)
    memory = {"before_load_mb": rss_mb()}
    loaded = load_stage_models(spec, threads) if spec else DeployedModel.load(card_path or model_path, threads=threads,
                                                                         bare=bare)
    memory["after_allocate_mb"] = rss_mb()
    cam = open_source(source, width=profile.camera_width, height=profile.camera_height, fps=profile.fps,
                      samples=pack or Path(SAMPLE_PACK), labels=[] if spec else loaded.labels, seed=seed)
    held = []    # the frame loop holds further Ctrl-C once the first stopped it; dropped when written (the run
    #              is ending on the first: its kind is the report's stop_reason and the exit code)
    try:
        with folder_lock(out, what="simulation"):
            work = _make_work(loaded, spec, profile, log)
            result, report = _run(work, cam, profile, memory, threads=threads, duration_s=duration_s,
                                  max_frames=max_frames, max_speed=max_speed, realtime=realtime, progress=progress,
                                  max_bad_frames=max_bad_frames, log=log, held=held)
            video = video and result.interrupted is None   # an interrupted run is written at once
            _publish_outputs(out, report, result.records, cam, work, profile, plots=plots, video=video,
                             force=force, log=log)
    finally:
        cam.close()
        for hold in held:
            hold.release(deliver=False)
    _print_summary(report, profile, log)
    if result.interrupted is not None:
        raise result.interrupted
    code = EXIT_SOURCE_FAILED if result.failed else EXIT_OK if report["pass"] else EXIT_TARGETS_MISSED
    return code, report


def _make_work(loaded, spec, profile, log):
    """The frame loop's Work: one model, or the pipeline's stages, each timed for the device."""
    from device_sim.work import SingleModel

    if spec is None:
        return SingleModel(loaded, device_timing(loaded, profile, log))
    from device_sim.stages import Pipeline, Stage

    return Pipeline(spec, [Stage(st, m, device_timing(m, profile, log, stage=st, pipeline=spec.path))
                           for st, m in zip(spec.stages, loaded)])


def _run(work, cam, profile, memory: dict, *, threads: int, duration_s, max_frames, max_speed: bool, realtime: bool,
         progress: bool, max_bad_frames: int, log, held: list):
    mode = "max-speed" if max_speed else f"{profile.fps:g} fps, drop policy {profile.drop_policy}"
    mode += ", real time" if realtime or getattr(cam, "live", False) else ", virtual clock"
    timing = work.timing
    log(f"simulating {work.name} [{work.format}] on {profile.name}: "
        f"{profile.camera_width}x{profile.camera_height} {cam.name}, {mode}, {threads} host thread(s); "
        f"device inference {_inference_text(work)} ({timing.label})")
    stages = getattr(work, "stages", None)
    memory["device"] = device_memory(work.tflites, profile, names=[st.name for st in stages] if stages else None)
    expected = max_frames or (None if duration_s is None or max_speed else math.ceil(duration_s * profile.fps))
    result = _loop_with_progress(work, cam, profile, expected, progress, duration_s=duration_s,
                                 max_frames=max_frames, max_speed=max_speed, realtime=realtime,
                                 max_bad_frames=max_bad_frames)
    if result.held_signals is not None:
        held.append(result.held_signals)
    if not result.records:
        if result.interrupted is not None:
            raise result.interrupted
        bad = result.bad_frames
        why = (f"; every frame it gave was bad ({len(bad)}): {bad[0]}" + (f" ... {bad[-1]}" if len(bad) > 1 else "")
               if bad else "")
        raise UserError(f"no frame was processed ({result.stop_reason}{why}); nothing to report")
    return result, _report(result, work, profile, memory, threads=threads, max_speed=max_speed, source=cam.name)


def _inference_text(work) -> str:
    stages = getattr(work, "stages", None)
    if stages is None:
        return f"{_ms(work.timing.inference_ms)}, host {work.timing.host_reference_ms:.2f} ms"
    return ", ".join(f"{st.name} {_ms(st.timing.inference_ms)} (host {st.timing.host_reference_ms:.2f} ms)"
                     for st in stages)


def _ms(value: float | None) -> str:
    return "as measured" if value is None else f"{value:.2f} ms"


def _locate(model_path: Path | None, source: str | None, samples) -> tuple[Path, Path | None, str, Path | None]:
    """(model path, its card or None for a bare .tflite, the source, the sample pack or None); a pipeline
    (model_path None) is like a bare model: no card, no sample pack of its own."""
    located = _located(model_path, source, samples)
    if samples and located[2].split(":")[0] != "synthetic":   # given, or the default for a bare model or pipeline
        raise UserError(f"--samples is the synthetic camera's sample pack, but the source is {located[2]}: drop "
                        "--samples, or use --source synthetic")
    return located


def _located(model_path: Path | None, source: str | None, samples) -> tuple[Path, Path | None, str, Path | None]:
    if model_path is None:
        source = source or "photo"
        if not samples and source.split(":")[0] == "synthetic":
            raise UserError("a pipeline has no sample pack for the synthetic camera: use --source photo (a camera "
                            "on a photograph), video:PATH, folder:PATH or camera:N, or give --samples")
        return None, None, source, Path(samples) if samples else None
    is_bare = is_bare_tflite(model_path)
    problem = path_problem(model_path, "file")   # a folder is an export folder, unless named like a .tflite
    if problem is not None and (is_bare or problem not in ("does not exist", "is a folder")):
        what = "is a folder, not a .tflite file" if problem == "is a folder" else problem
        raise UserError(f"--model {model_path} {what}; give the model file or its export folder")
    card_path = None if is_bare else resolve_card(model_path)
    source = source or ("photo" if is_bare else "synthetic")
    pack = Path(samples) if samples else None if is_bare else card_path.parent.parent / SAMPLE_PACK
    if pack is None and source.split(":")[0] == "synthetic":
        raise UserError(f"{model_path} is a bare .tflite with no sample pack for the synthetic camera: use "
                        "--source photo (a camera on a photograph), video:PATH, folder:PATH or camera:N")
    return model_path, card_path, source, pack


def _publish_outputs(out: Path, report: dict, recs, cam, work, profile, *, plots: bool, video: bool, force: bool,
                     log) -> None:
    staging = make_staging(out)
    try:
        _write_outputs(staging, out, report, recs, cam, work, profile, plots=plots, video=video, log=log)
    except KeyboardInterrupt as e:
        hold = HeldSignals()   # the first signal names the stop; one more must not cut the partial result
        try:
            discard(staging)
            _publish_interrupted(out, report, recs, e, force=force)
        finally:
            hold.release(deliver=False)
        raise
    except BaseException:
        discard(staging)
        raise
    publish(staging, out, kind=OUTPUT_KIND, force=force)


def _publish_interrupted(out: Path, report: dict, recs, interrupt: KeyboardInterrupt, *, force: bool) -> None:
    """Ctrl-C / SIGTERM while the outputs were written (plots, video): the report and frames.csv alone,
    marked partial, written and swapped in with further signals held (they take a moment)."""
    reason = "terminated" if type(interrupt).__name__ == "Terminated" else "interrupted"
    if not report["partial"]:    # a run already cut short keeps its own reason
        report.update(partial=True, stop_reason=reason)
    report.pop("video_frames", None)
    report["outputs"] = {"report": str(out / "report.json"), "frames": str(out / "frames.csv")}
    with deferred_signals():
        staging = make_staging(out)
        write_frames_csv(staging / "frames.csv", [r.as_row() for r in recs])
        write_json(staging / "report.json", report)
        publish(staging, out, kind=OUTPUT_KIND, force=force)


def _check_stop_rule(duration_s, max_frames, max_bad_frames) -> None:
    if duration_s is not None and not (math.isfinite(duration_s) and 0 < duration_s <= MAX_DURATION_S):
        raise UserError(f"--duration must be a number of seconds > 0 and at most {MAX_DURATION_S:g} (a week of "
                        f"frames), got {duration_s}")
    if max_frames is not None and max_frames < 1:
        raise UserError(f"--frames must be >= 1, got {max_frames}")
    if max_bad_frames < 1:
        raise UserError(f"--max-bad-frames must be >= 1 (1: the first corrupt frame ends the run), "
                        f"got {max_bad_frames}")


def _host_threads(profile, log) -> int:
    """Threads of the host's interpreter. When the device's inference time comes from the projection (or
    the profile fixes it), the device's threads are in that time and the host runs 1 thread: a paced
    2-thread invoke here pays its worker threads' wake-up (~1 ms, more than a small model's projection)."""
    from device_sim.profiles import HOST_CORE

    if profile.inference_ms is not None:
        return 1
    if profile.core != HOST_CORE:
        from device_sim.arm.runner import find_env

        try:
            find_env(None)
            return 1
        except UserError:
            pass
    return _threads_for(profile, log)


def _threads_for(profile, log) -> int:
    threads = min(profile.threads, os.cpu_count() or profile.threads)
    if threads < profile.threads:
        log(f"note: profile asks for {profile.threads} threads; this host has {os.cpu_count()} cores, using {threads}")
    return threads


def _loop_with_progress(work, cam, profile, expected, progress: bool, **loop_kw):
    bar = _progress(expected, progress)
    try:
        return run_loop(work, cam, profile, on_frame=(lambda rec: bar.update(1)) if bar is not None else None,
                        **loop_kw)
    finally:
        if bar is not None:
            bar.close()


def _progress(total: int | None, enabled: bool):
    try:
        from tqdm import tqdm
    except ImportError:  # pragma: no cover - tqdm is optional on a device
        return None
    return tqdm(total=total, unit="frame", disable=None if enabled else True, dynamic_ncols=True, leave=False)


def _report(result, work, profile, memory: dict, *, threads: int, max_speed: bool, source: str) -> dict:
    recs = result.records
    sampled_peak = max(r.rss_mb for r in recs)
    memory.update(peak_mb=max(peak_rss_mb(), sampled_peak), loop_peak_sampled_mb=sampled_peak,
                  model_arena_mb=memory["after_allocate_mb"] - memory["before_load_mb"])
    facts = RunFacts(records=recs, memory_mb=memory, model_size_mb=work.size_mb,
                     latency_percentile=profile.latency_percentile, device=work.timing.kind)
    stages = getattr(work, "stages", None)
    budgets = check_budgets(profile.budgets, facts) + (check_stage_budgets(
        {st.name: st.spec.budgets for st in stages if st.spec.budgets}, facts) if stages else [])
    labelled = [r for r in recs if r.correct is not None]
    interrupted = result.interrupted is not None
    span = recs[-1].capture_s - recs[0].capture_s
    e2e_stats = summarize(r.e2e_ms for r in recs)
    report = {
        "partial": result.failed or interrupted, "stop_reason": result.stop_reason,
        "bad_frames": {"count": len(result.bad_frames), "examples": result.bad_frames[:5]},
        "invalid_outputs": sum(not r.valid for r in recs),
        "frames": {"captured": result.captured, "processed": len(recs), "dropped": result.dropped},
        "mode": "max-speed" if max_speed else "camera-rate",
        "clock": _clock(result.clock, work),
        "profile": profile.as_dict(), "threads_used": threads,
        "model": work.model_report(),
        "host": host_info(), "runtime": runtime_version(), "source": source,
        "device": {**work.device_report(recs), "prepost_instructions": _prepost_instructions(work),
                   "note": "latency columns without _host are the device's (see kind); capture, queue and "
                           "end-to-end times are on the clock named by `clock`; *_host columns are this "
                           "machine's measurements"},
        "latency_ms": {
            "end_to_end": e2e_stats,
            "inference": summarize(r.inference_ms for r in recs),
            "inference_host": summarize(r.inference_host_ms for r in recs),
            "preprocess": summarize(r.preprocess_ms for r in recs),
            "preprocess_host": summarize(r.preprocess_host_ms for r in recs),
            "postprocess": summarize(r.postprocess_ms for r in recs),
            "postprocess_host": summarize(r.postprocess_host_ms for r in recs),
            "queue": summarize(r.queue_ms for r in recs),
            "overhead": summarize(r.e2e_ms - r.inference_ms for r in recs),
        },
        "jitter_ms": e2e_stats["jitter"],
        "achieved_fps": (len(recs) - 1) / span if span > 0 else None,
        "drop_rate": result.dropped / result.captured if result.captured else 0.0,
        "deadline_miss_rate": float(np.mean([not r.deadline_met for r in recs])),
        "accuracy": float(np.mean([bool(r.correct) for r in labelled])) if labelled else None,
        "labelled_frames": len(labelled),
        "memory_mb": memory, "budgets": budgets,   # a budget whose pass is None was not judged (a stage never ran)
        "pass": all(b["pass"] is not False for b in budgets),
        "wall_seconds": result.wall_s,
    }
    if stages:
        report["stages"] = work.stage_report(recs)
    return report


CLOCKS = {
    "virtual": {"kind": "virtual", "note": "the device's own clock: frames arrive at the camera's times and the "
                "device is busy for each frame's device time; nothing waited, so these timings repeat whatever "
                "the host's load"},
    "wall": {"kind": "wall", "note": "real time: frames arrived on this host's wall clock and the loop slept "
                  "until each frame's device time had passed; a frame the host ran slower took the host's time"},
}


def _host_timed(work) -> list[str]:
    """The parts of the device time that are this host's measurements (no projection for them)."""
    stages = getattr(work, "stages", None)
    timings = [(f"{st.name} ", st.timing) for st in stages] if stages else [("", work.timing)]
    return [f"{name}{part}" for name, t in timings
            for part, value in (("inference", t.inference_ms), ("preprocessing", t.pre_ms),
                                ("postprocessing", t.post_ms)) if value is None]


def _clock(kind: str, work) -> dict:
    """CLOCKS[kind], saying when host-measured parts make the virtual clock's timings vary with the host."""
    clock = dict(CLOCKS[kind])
    host = _host_timed(work)
    if kind == "virtual" and host:
        clock["note"] = ("the device's own clock: frames arrive at the camera's times and the device is busy for "
                         f"each frame's device time; but {', '.join(host)} took this host's measured time (not "
                         "projected: see the device's kind), so those timings, and the drops and latencies that "
                         "follow from them, vary with the host's load")
        clock["host_timed"] = host
    return clock


def _prepost_instructions(work) -> dict:
    """Per stage (the model's name for one model), per core: instructions of one pre- and one post-processing
    on the device (device_sim.arm.prepost), where they were counted."""
    stages = getattr(work, "stages", None)
    timings = {st.name: st.timing for st in stages} if stages else {work.name: work.timing}
    out = {}
    for name, timing in timings.items():
        pp = timing.details.get("prepost")
        if pp:
            out[name] = {pp["core"]: {k: pp[k] for k in ("preprocess_instructions", "postprocess_instructions",
                                                          "preprocess_ms", "postprocess_ms", "frame")}}
    return out


def _write_outputs(out: Path, final: Path, report: dict, recs, cam, work, profile, *, plots: bool, video: bool,
                   log) -> None:
    """Writes every output into `out` (the staging folder); the report names them under `final`."""
    outputs = {"report": out / "report.json", "frames": out / "frames.csv"}
    write_frames_csv(outputs["frames"], [r.as_row() for r in recs])
    title = f"{work.name} {work.format} on {profile.name} ({report['device']['label']})"
    if plots and _optional("matplotlib", "latency.png and memory.png", log):
        from device_sim.plots import plot_latency, plot_memory

        limits = {kind: [(b["title"], b["limit"]) for b in report["budgets"] if b["plot"] == kind]
                  for kind in ("latency", "memory")}
        outputs["latency_plot"], outputs["memory_plot"] = out / "latency.png", out / "memory.png"
        stage_names = [st["name"] for st in report.get("stages", [])]
        plot_latency(outputs["latency_plot"], recs, report["device"]["label"], title, limits["latency"], stage_names)
        plot_memory(outputs["memory_plot"], recs, report["memory_mb"], title, limits["memory"])
    if video:
        from device_sim.video import write_video

        t0 = time.perf_counter()
        # plays at the rate results came out in real time; at --max-speed, at the camera's rate
        fps = profile.fps if report["mode"] == "max-speed" or not report["achieved_fps"] else report["achieved_fps"]
        written = write_video(out / "demo.mp4", cam, recs, work, profile.deadline_ms,
                              round(min(max(fps, 1.0), profile.fps), 2))
        if written is None:
            log("note: demo.mp4 skipped: this OpenCV cannot write mp4 video (no video writer in its build)")
        report["video_frames"] = written or 0
        if written:
            outputs["video"] = out / "demo.mp4"
            log(f"demo.mp4: {written} frames in {time.perf_counter() - t0:.1f} s")
    report["outputs"] = {k: str(final / v.name) for k, v in outputs.items()}
    write_json(outputs["report"], report)


def _optional(module: str, what: str, log) -> bool:
    """Whether the optional library `module` is installed; when not, `what` is skipped with a one-line note
    (report.json and frames.csv never depend on one)."""
    import importlib

    try:
        importlib.import_module(module)
        return True
    except ImportError:
        log(f"note: {what} skipped: {module} is not installed (pip install {module})")
        return False


def _print_summary(report: dict, profile, log) -> None:
    lat, frames, acc = report["latency_ms"], report["frames"], report["accuracy"]
    log(f"frames: {frames['processed']} processed, {frames['dropped']} dropped of {frames['captured']} captured "
        f"({report['stop_reason']}){'  [PARTIAL]' if report['partial'] else ''}")
    dev, mem = report["device"], report["memory_mb"]
    log(f"latency ms ({dev['label']})  end-to-end p50 {lat['end_to_end']['p50']:.2f}  "
        f"p95 {lat['end_to_end']['p95']:.2f}  |  inference p50 {lat['inference']['p50']:.2f} "
        f"(host {lat['inference_host']['p50']:.2f})  |  {report['achieved_fps'] or 0:.1f} fps")
    for st in report.get("stages", []):
        lat_st, host = st["latency_ms"], st["latency_host_ms"]
        line = (f"  stage {st['name']:<10} ran on {st['frames_run']}/{frames['processed']} frames "
                f"({100 * st['run_ratio']:.0f}%")
        if st.get("run_ratio_once_tracking") is not None:
            line += f"; {100 * st['run_ratio_once_tracking']:.0f}% once tracking"
        line += f"), found on {st['frames_found']}"
        if st.get("bad_regions"):
            line += f"; {st['bad_regions']} region(s) from its input no crop could be taken of (invalid frames)"
        if lat_st:
            line += f"; time per frame p50 {lat_st['p50']:.2f} p95 {lat_st['p95']:.2f} ms (host p50 {host['p50']:.2f})"
        log(line)
    if dev["host_slower_frames"] and report["clock"]["kind"] == "wall":
        log(f"note: on {dev['host_slower_frames']} frame(s) this host was slower than the projected device; "
            "their latencies are the host's (upper bounds)")
    log(f"accuracy {'n/a' if acc is None else f'{acc:.4f}'} on {report['labelled_frames']} labelled frames; "
        f"device memory {mem['device']['total_mb']:.1f} MB (model {mem['device']['model_file_mb']:.1f} + runtime "
        f"{mem['device']['runtime_mb']:.1f} + camera {mem['device']['camera_buffers_mb']:.1f}); "
        f"simulator process peak RSS {mem['peak_mb']:.1f} MB (not the device's)")
    if report["bad_frames"]["count"]:
        log(f"skipped {report['bad_frames']['count']} bad frame(s) (unreadable or corrupt), e.g. "
            f"{report['bad_frames']['examples'][0]}")
    log(budget_table(report["budgets"], profile.name))
    for key, path in report["outputs"].items():
        log(f"  {key:<13} {path}")
    sys.stdout.flush()


def apply_overrides(profile, **overrides):
    """A copy of the profile with the CLI's explicit overrides (None = keep), validated like the TOML."""
    changes = {k: v for k, v in overrides.items() if v is not None}
    for name, value in changes.items():
        check_override(name, value)
    result = dataclasses.replace(profile, **changes)
    if "queue_size" in changes and result.drop_policy != "queue":
        raise UserError(f"--queue-size bounds the queue drop policy, but the drop policy is {result.drop_policy} "
                        f"(profile {profile.name}, or --drop-policy); use --drop-policy queue, or drop --queue-size")
    if result.core != "host" and result.clock_ghz is None:
        raise UserError(f"--core {result.core} needs --clock-ghz (profile {profile.name} sets no clock)")
    return result
