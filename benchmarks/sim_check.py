"""Does the simulator measure what the on-device benchmark measures? (issue #4, acceptance 2)

For an int8 model and a thread count, both run in fresh processes, as on a device:
- back to back: the simulator at --max-speed vs `device_sim.bench` (median inference time each), and
  the simulator's own overhead (median end-to-end minus inference) at the profile's 640x480 frames;
- at camera cadence: the simulator in real time at 30 fps vs the benchmark with --run-delay-ms 33.3,
  because an inference that follows 33 ms of idling finds cold caches and sleeping worker threads.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from pathlib import Path

__all__ = ["sim_vs_bench", "AGREEMENT", "OVERHEAD_MS"]

AGREEMENT = 0.15    # |simulator / benchmark - 1| must stay within this
OVERHEAD_MS = 2.0   # the loop's own overhead per frame at --max-speed


def _sim(model_dir: Path, out: Path, threads: int, *, max_speed: bool) -> dict:
    args = ["--frames", "400", "--max-speed"] if max_speed else ["--duration", "6", "--realtime"]
    cmd = [sys.executable, "-m", "edgevit_cli", "simulate", "--model", str(model_dir), "--profile", "ar-glasses",
           "--threads", str(threads), "--core", "host", "--no-video", "--out", str(out), *args]
    subprocess.run(cmd, capture_output=True, text=True)   # exit 3 (a budget) is still a measurement
    return json.loads((out / "report.json").read_text())


def _bench(model_dir: Path, out: Path, threads: int, delay_ms: float) -> dict:
    cmd = [sys.executable, "-m", "edgevit_cli", "bench", str(model_dir), "--threads", str(threads), "--runs", "200",
           "--min-seconds", "2", "--input", "samples", "--run-delay-ms", str(delay_ms), "--json", str(out)]
    subprocess.run(cmd, check=True, capture_output=True, text=True)
    return json.loads(out.read_text())["results"][0]


def sim_vs_bench(model_dir: Path, *, threads=(1, 2), fps: float = 30.0) -> list[dict]:
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        for t in threads:
            fast = _sim(model_dir, tmp / f"fast{t}", t, max_speed=True)
            paced = _sim(model_dir, tmp / f"paced{t}", t, max_speed=False)
            b_fast = _bench(model_dir, tmp / f"bench{t}.json", t, 0.0)
            b_paced = _bench(model_dir, tmp / f"bench_delay{t}.json", t, 1000.0 / fps)
            for mode, sim, bench in (("back-to-back", fast, b_fast), ("camera cadence", paced, b_paced)):
                sim_ms, bench_ms = sim["latency_ms"]["inference_host"]["p50"], bench["latency_ms"]["p50"]
                ratio = sim_ms / bench_ms
                row = {"mode": mode, "threads": t, "simulator_inference_p50_ms": sim_ms,
                       "bench_p50_ms": bench_ms, "ratio": ratio, "agree": abs(ratio - 1) <= AGREEMENT,
                       "frame": f"{sim['profile']['camera_width']}x{sim['profile']['camera_height']}"}
                if mode == "back-to-back":
                    row["overhead_p50_ms"] = sim["latency_ms"]["overhead"]["p50"]
                    row["overhead_ok"] = row["overhead_p50_ms"] < OVERHEAD_MS
                rows.append(row)
    return rows
