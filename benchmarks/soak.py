"""Soak: the simulator over many frames at --max-speed, in a fresh process, on one int8 model.

Reports what a long session would reveal: resident-memory growth after warm-up (a leak shows as a
slope), p99 latency drift (first vs last quarter) and dropped frames. Target: RSS growth < 2 MB.

    python -m benchmarks.soak artifacts/edgevit_xs-digits/int8 --frames 20000 --json /tmp/soak.json
"""

from __future__ import annotations

import argparse
import csv
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

__all__ = ["soak", "RSS_GROWTH_TARGET_MB", "WARMUP_FRAMES"]

RSS_GROWTH_TARGET_MB = 2.0
WARMUP_FRAMES = 1000


def soak(model_dir: Path, *, frames: int = 20_000, profile: str = "ar-glasses", threads: int = 1) -> dict:
    with tempfile.TemporaryDirectory(prefix="edgevit-soak-") as tmp:
        out = Path(tmp) / "sim"
        cmd = [sys.executable, "-m", "edgevit_cli", "simulate", "--model", str(model_dir), "--profile", profile,
               "--frames", str(frames), "--max-speed", "--no-video", "--threads", str(threads), "--core", "host",
               "--out", str(out)]
        t0 = time.perf_counter()
        proc = subprocess.run(cmd, capture_output=True, text=True)
        wall = time.perf_counter() - t0
        if proc.returncode not in (0, 3):
            raise RuntimeError(f"soak run failed (exit {proc.returncode}): {proc.stderr.strip()[-300:]}")
        report = json.loads((out / "report.json").read_text())
        with open(out / "frames.csv") as f:
            rows = list(csv.DictReader(f))
    rss = np.array([float(r["rss_mb"]) for r in rows])
    e2e = np.array([float(r["e2e_ms"]) for r in rows])
    quarter = len(rows) // 4
    after_warmup = rss[WARMUP_FRAMES:] if len(rss) > 2 * WARMUP_FRAMES else rss
    slope = float(np.polyfit(np.arange(len(after_warmup)), after_warmup, 1)[0]) if len(after_warmup) > 1 else 0.0
    growth = float(after_warmup[-1] - after_warmup[0])
    return {
        "model": str(model_dir), "frames": len(rows), "wall_seconds": wall, "threads": threads,
        "rss_mb": {"after_warmup": float(after_warmup[0]), "end": float(rss[-1]), "max": float(rss.max()),
                   "growth_after_warmup": growth, "slope_per_1000_frames": 1000 * slope},
        "p99_ms": {"first_quarter": float(np.percentile(e2e[:quarter], 99)),
                   "last_quarter": float(np.percentile(e2e[-quarter:], 99))},
        "p50_ms": float(np.median(e2e)),
        "dropped": report["frames"]["dropped"], "invalid_outputs": report["invalid_outputs"],
        "bad_frames": report["bad_frames"]["count"], "partial": report["partial"],
        "target_met": growth < RSS_GROWTH_TARGET_MB,
        "note": "host latency (max-speed, device 'host' (no projection)); at --max-speed no frame is dropped by design",
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.soak", description=__doc__.splitlines()[0])
    p.add_argument("model", help="export folder of an int8 model (e.g. artifacts/edgevit_xs-digits/int8)")
    p.add_argument("--frames", type=int, default=20_000)
    p.add_argument("--json", default=None)
    args = p.parse_args(argv)
    res = soak(Path(args.model), frames=args.frames)
    print(json.dumps(res, indent=2))
    if args.json:
        from contract.files import write_json

        write_json(Path(args.json), res)
    return 0


if __name__ == "__main__":
    sys.exit(main())
