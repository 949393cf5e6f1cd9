"""`edgevit simulate` (also `python -m device_sim`): the camera-frame loop against a device profile."""

from __future__ import annotations

import argparse
from pathlib import Path

from edgevit_cli.main import seed

INPUTS = ("model", "samples", "labels", "profile", "pipeline")   # recovered before they are read (main._recover_inputs)


def add_arguments(p: argparse.ArgumentParser) -> None:
    from device_sim.arm.cores import CORES
    from device_sim.tasks import bare_task_names

    what = p.add_mutually_exclusive_group(required=True)
    what.add_argument("--model",
                      help="export folder with model.tflite + model.json (e.g. artifacts/x/int8), or any .tflite")
    what.add_argument("--pipeline", help="a pipeline of models per frame: face, hand, selfie (built in, MediaPipe's "
                                         "models from `make mediapipe-models`) or your own .toml (README: Pipelines)")
    p.add_argument("--profile", default="ar-glasses", help="ar-glasses (default), smartwatch, phone, or a .toml path")
    p.add_argument("--source", default=None,
                   help="synthetic (an export's sample pack; the default), photo[:PATH] (a camera on a photograph; "
                        "the default for a bare .tflite and a pipeline), video:PATH, camera:INDEX, folder:PATH")
    p.add_argument("--samples", default=None, help="sample pack for the synthetic camera (default: beside the model)")
    p.add_argument("--duration", type=float, default=None,
                   help="seconds to run (default 20, or no limit when --frames is given)")
    p.add_argument("--frames", type=int, default=None, help="stop after this many captured frames")
    p.add_argument("--max-speed", action="store_true",
                   help="take each frame when the device is free: no idling, no drops")
    p.add_argument("--realtime", action="store_true",
                   help="pace frames on the wall clock (sleeping for the device's time) instead of the device's "
                        "virtual clock; a camera: source always runs in real time")
    p.add_argument("--threads", type=int, default=None, help="override the cores the app may use on the device")
    p.add_argument("--core", default=None,
                   help=f"override the device's core: {', '.join(CORES)}, or host (no projection)")
    p.add_argument("--clock-ghz", type=float, default=None, help="override the device core's clock")
    p.add_argument("--drop-policy", choices=("latest", "queue"), default=None, help="override the profile's policy")
    p.add_argument("--queue-size", type=int, default=None, help="override the bound of the queue policy")
    p.add_argument("--out", default="runs/simulate", help="output folder (default runs/simulate)")
    p.add_argument("--no-video", action="store_true", help="skip demo.mp4")
    p.add_argument("--seed", type=seed, default=0, help="seed of the synthetic camera")
    p.add_argument("--max-bad-frames", type=int, default=None,
                   help="corrupt frames in a row that end the run as partial (default 10); fewer are skipped")
    bare = p.add_argument_group("a bare .tflite (no model.json beside it): what the file cannot say")
    bare.add_argument("--task", choices=bare_task_names(), default=None,
                      help="raw (default): run and time every output without decoding; classification: top-1; "
                           "segmentation: the first output is a foreground mask (drawn in demo.mp4)")
    bare.add_argument("--labels", default=None, help="text file, one class name per line (classification)")
    bare.add_argument("--input-range", default=None,
                      help="LOW,HIGH the model expects for pixels 0..255, e.g. 0,1 or (with =) "
                           "--input-range=-1,1; default 0,255")
    bare.add_argument("--mean", default=None, help="R,G,B in 0..1 units: (pixel/255 - mean) / std (with --std)")
    bare.add_argument("--std", default=None, help="R,G,B in 0..1 units (with --mean)")
    bare.add_argument("--color", choices=("RGB", "BGR"), default=None, help="channel order the model takes (RGB)")
    bare.add_argument("--resize", default=None, metavar="POLICY",
                      help="how a frame becomes its input: center_crop (default; the centred square, resized), "
                           "letterbox (the whole frame, aspect kept, padded: MediaPipe's detectors) or stretch "
                           "(the whole frame, aspect not kept); README: Input geometry")
    p.add_argument("--force", action="store_true",
                   help="allow an --out that holds other files: they are kept, an earlier simulation is replaced")


def _floats(text: str | None, option: str, n: int) -> tuple[float, ...] | None:
    import math

    from contract.errors import UserError

    if text is None:
        return None
    try:
        values = tuple(float(v) for v in text.split(","))
    except ValueError:
        values = ()
    if len(values) != n or not all(math.isfinite(v) for v in values):
        raise UserError(f"{option} takes {n} comma-separated numbers, got {text!r}")
    if max(abs(v) for v in values) > 1e6:   # a model takes values within +-1e6; 1e38 overflowed float32
        raise UserError(f"{option} takes numbers within -1e6..1e6, got {text!r}")
    return values


def _labels(path: Path) -> tuple[str, ...]:
    """--labels: a text file, one class name per line."""
    from contract.errors import UserError
    from contract.files import path_problem

    what = "a text file, one class name per line"
    if (problem := path_problem(path, "file")) is not None:
        raise UserError(f"--labels {path} {problem}; give {what}")
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise UserError(f"--labels {path} is not UTF-8 text; give {what}") from None
    return tuple(ln.strip() for ln in text.splitlines() if ln.strip())


def bare_model(args: argparse.Namespace):
    """The BareModel the options describe, or None when none was given (an exported model's card rules)."""
    from contract.errors import UserError
    from device_sim.model import BareModel
    from device_sim.tasks import bare_default_task, task_named

    given = {k: getattr(args, k) for k in ("task", "labels", "input_range", "mean", "std", "color", "resize")}
    if all(v is None for v in given.values()):
        return None
    if (args.mean is None) != (args.std is None):
        raise UserError("--mean and --std go together")
    if args.input_range is not None and args.mean is not None:
        raise UserError("give either --input-range or --mean/--std, not both")
    labels = ()
    if args.labels is not None:
        labels = _labels(Path(args.labels))
    task = args.task or bare_default_task(bool(labels))
    if labels and not task_named(task).uses_labels:
        raise UserError(f"--labels names a classifier's classes; a {task} model does not read them: drop --labels "
                        "or give --task classification")
    std = _floats(args.std, "--std", 3)
    if std is not None and min(std) < 1e-6:   # 1e-320 passed "> 0", then was 0 in float32: a division by zero
        raise UserError(f"--std values are the channels' spread in 0..1 units, at least 1e-6; got {args.std!r}")
    low_high = _floats(args.input_range, "--input-range", 2) or (0.0, 255.0)
    if low_high[0] >= low_high[1]:
        raise UserError(f"--input-range LOW,HIGH needs LOW < HIGH, got {args.input_range!r}")
    return BareModel(task=task, labels=labels, value_range=low_high, mean=_floats(args.mean, "--mean", 3),
                     std=std, color=args.color or "RGB", resize=_resize(args.resize))


def _resize(name: str | None) -> dict | None:
    from contract.errors import UserError
    from contract.images import POLICIES, resize_preset

    if name is None:
        return None
    if name not in POLICIES:
        raise UserError(f"--resize {name} is not one of {', '.join(POLICIES)}")
    return resize_preset(name)


def run(args: argparse.Namespace) -> int:
    from device_sim.loop import MAX_BAD_FRAMES
    from device_sim.profiles import load_profile
    from device_sim.simulate import DEFAULT_DURATION_S, apply_overrides, simulate

    profile = apply_overrides(load_profile(args.profile), threads=args.threads, core=args.core,
                              clock_ghz=args.clock_ghz,
                              drop_policy=args.drop_policy, queue_size=args.queue_size)
    duration = args.duration if args.duration is not None else None if args.frames else DEFAULT_DURATION_S
    bare = bare_model(args)
    if bare is not None and args.pipeline:
        from contract.errors import UserError

        raise UserError("--task, --labels, --input-range, --mean/--std, --color and --resize describe a bare "
                        "--model; a pipeline's stages say it in the pipeline file")
    code, _ = simulate(args.model, profile, pipeline=args.pipeline, out=Path(args.out), source=args.source, bare=bare,
                       samples=Path(args.samples) if args.samples else None, duration_s=duration,
                       max_frames=args.frames, max_speed=args.max_speed, realtime=args.realtime,
                       video=not args.no_video, seed=args.seed, force=args.force,
                       max_bad_frames=MAX_BAD_FRAMES if args.max_bad_frames is None else args.max_bad_frames)
    return code
