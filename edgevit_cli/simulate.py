"""`edgevit simulate` (also `python -m device_sim`): the camera-frame loop against a device profile."""

from __future__ import annotations

import argparse
from pathlib import Path


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", required=True,
                   help="export folder with model.tflite + model.json (e.g. artifacts/x/int8)")
    p.add_argument("--profile", default="ar-glasses", help="ar-glasses (default), smartwatch, phone, or a .toml path")
    p.add_argument("--source", default="synthetic", help="synthetic (default), video:PATH, camera:INDEX, folder:PATH")
    p.add_argument("--samples", default=None, help="sample pack for the synthetic camera (default: beside the model)")
    p.add_argument("--duration", type=float, default=None,
                   help="seconds to run (default 20, or no limit when --frames is given)")
    p.add_argument("--frames", type=int, default=None, help="stop after this many captured frames")
    p.add_argument("--max-speed", action="store_true", help="no real-time pacing: process every frame back to back")
    p.add_argument("--threads", type=int, default=None, help="override the cores the app may use on the device")
    p.add_argument("--core", default=None,
                   help="override the device's core: cortex-a53, cortex-a55, cortex-a76, or host (no projection)")
    p.add_argument("--clock-ghz", type=float, default=None, help="override the device core's clock")
    p.add_argument("--drop-policy", choices=("latest", "queue"), default=None, help="override the profile's policy")
    p.add_argument("--queue-size", type=int, default=None, help="override the bound of the queue policy")
    p.add_argument("--out", default="runs/simulate", help="output folder (default runs/simulate)")
    p.add_argument("--no-video", action="store_true", help="skip demo.mp4")
    p.add_argument("--seed", type=int, default=0, help="seed of the synthetic camera")
    p.add_argument("--max-bad-frames", type=int, default=None,
                   help="corrupt frames in a row that end the run as partial (default 10); fewer are skipped")
    p.add_argument("--force", action="store_true",
                   help="allow an --out that holds other files: they are kept, an earlier simulation is replaced")


def run(args: argparse.Namespace) -> int:
    from device_sim.loop import MAX_BAD_FRAMES
    from device_sim.profiles import load_profile
    from device_sim.simulate import DEFAULT_DURATION_S, apply_overrides, simulate

    profile = apply_overrides(load_profile(args.profile), threads=args.threads, core=args.core,
                              clock_ghz=args.clock_ghz,
                              drop_policy=args.drop_policy, queue_size=args.queue_size)
    duration = args.duration if args.duration is not None else None if args.frames else DEFAULT_DURATION_S
    code, _ = simulate(args.model, profile, out=Path(args.out), source=args.source,
                       samples=Path(args.samples) if args.samples else None, duration_s=duration,
                       max_frames=args.frames, max_speed=args.max_speed, video=not args.no_video, seed=args.seed,
                       force=args.force, max_bad_frames=MAX_BAD_FRAMES if args.max_bad_frames is None
                       else args.max_bad_frames)
    return code
