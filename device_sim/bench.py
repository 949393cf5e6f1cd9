"""On-device benchmark (`edgevit bench`): TFLite's benchmark_model, in Python, with only the runtime,
numpy and psutil. Init time, first inference, warm-up mean, then N timed runs (at least `runs` and
at least `min_seconds`) with min/mean/std/p50/p90/p95/p99/max, the memory footprint after init and
the process's overall peak. `bench()` runs each thread count in a fresh process (this module's
worker entry), so memory numbers are those of a process that only loads and runs this model.

The model is an export folder / model.json (input from the card; input "samples" uses the sample
pack) or a bare .tflite (random input matching its input tensor).
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from contract.card import SAMPLE_PACK, card_candidate
from contract.errors import UserError
from contract.files import check_utf8_path
from contract.runtime import MAX_THREADS

__all__ = ["BenchOptions", "bench", "bench_once", "table", "parse_threads"]

RANDOM_INPUTS = 8          # distinct random inputs cycled through
SAMPLE_INPUTS = 64         # sample-pack images cycled through
WORKER_USER_ERROR = 2   # the worker's exit code for a user's mistake (its one line is the last of stderr)
WORKER_USAGE = ("python -m device_sim.bench is the worker `edgevit bench` starts (it takes one JSON request); "
                "benchmark a model with `edgevit bench MODEL` (on a device: python -m edgevit_cli bench MODEL)")


MAX_RUN_DELAY_MS = 60_000.0      # a minute between runs; more overflows time.sleep and benchmarks nothing


@dataclass(frozen=True)
class BenchOptions:
    runs: int = 100               # minimum timed runs
    min_seconds: float = 2.0      # minimum timed seconds
    warmup_runs: int = 10
    input_kind: str = "random"    # "random" or "samples"
    samples: str | None = None    # sample pack (default: beside the model folder)
    seed: int = 0
    run_delay_ms: float = 0.0     # idle from one run's start to the next, like a camera's frame period

    def __post_init__(self):
        import math

        if self.runs < 1 or not (math.isfinite(self.min_seconds) and self.min_seconds >= 0) \
                or self.warmup_runs < 0 or not (math.isfinite(self.run_delay_ms) and self.run_delay_ms >= 0):
            raise UserError("--runs must be >= 1; --min-seconds, --warmup-runs and --run-delay-ms finite and >= 0")
        if self.run_delay_ms > MAX_RUN_DELAY_MS:
            raise UserError(f"--run-delay-ms must be <= {MAX_RUN_DELAY_MS:g} (a camera's frame period is tens of ms), "
                            f"got {self.run_delay_ms:g}")
        if self.input_kind not in ("random", "samples"):
            raise UserError(f"--input must be random or samples, got {self.input_kind!r}")


def parse_threads(text: str) -> list[int]:
    try:
        threads = [int(t) for t in text.split(",") if t.strip()]
    except ValueError:
        threads = []
    if not threads or min(threads) < 1 or max(threads) > MAX_THREADS:
        raise UserError(f"--threads takes whole numbers 1..{MAX_THREADS} separated by commas (e.g. 1,2), got {text!r}")
    return threads


def _card_runner(card: Path, threads: int, opts: BenchOptions, rng):
    from device_sim.model import DeployedModel

    m = DeployedModel.load(card, threads=threads)
    if opts.input_kind == "samples":
        from device_sim.sources.synthetic import sample_images

        pack = Path(opts.samples) if opts.samples else card.parent.parent / SAMPLE_PACK
        if not pack.is_file():
            raise UserError(f"sample pack {pack} not found; use --input random or --samples PATH")
        inputs = [m.to_input(im[None]) for im in sample_images(pack)[:SAMPLE_INPUTS]]
    else:
        inputs = [m.to_input(rng.integers(0, 256, (1, m.height, m.width, 3), dtype=np.uint8))
                  for _ in range(RANDOM_INPUTS)]
    desc = {"name": m.card.get("name"), "format": m.card.get("format"), "file": str(m.tflite), "size_mb": m.size_mb}
    return m.invoke, inputs, m.init_seconds, desc


def _bare_runner(path: Path, threads: int, opts: BenchOptions, rng):
    from contract.runtime import interpreter_class

    if path.suffix != ".tflite" or not path.is_file():
        raise UserError(f"{path} is neither an export folder with model.json nor a .tflite file")
    if opts.input_kind == "samples":
        raise UserError("--input samples needs a model.json beside the .tflite")
    check_utf8_path(path, what="model", fix="rename it or its folder")
    t0 = time.perf_counter()
    try:
        interp = interpreter_class()(model_path=str(path), num_threads=threads)
        interp.allocate_tensors()
    except (ValueError, RuntimeError) as e:
        raise UserError(f"the runtime cannot load {path}: {str(e).splitlines()[0][:200]}") from None
    init = time.perf_counter() - t0
    inp, out = interp.get_input_details()[0], interp.get_output_details()[0]
    dtype = np.dtype(inp["dtype"])
    if dtype.kind in "iu":
        info = np.iinfo(dtype)
        inputs = [rng.integers(info.min, info.max + 1, inp["shape"], dtype=dtype) for _ in range(RANDOM_INPUTS)]
    else:
        inputs = [rng.uniform(0, 255, inp["shape"]).astype(dtype) for _ in range(RANDOM_INPUTS)]

    def invoke(x):
        interp.set_tensor(inp["index"], x)
        interp.invoke()
        return interp.get_tensor(out["index"])

    return invoke, inputs, init, {"name": path.stem, "format": "tflite", "file": str(path),
                                  "size_mb": path.stat().st_size / 1e6}


def _runner(model: str, threads: int, opts: BenchOptions):
    """-> (invoke(x), inputs, init_seconds, description)."""
    card = card_candidate(model)
    rng = np.random.default_rng(opts.seed)
    if card.is_file():
        return _card_runner(card, threads, opts, rng)
    return _bare_runner(Path(model), threads, opts, rng)


def bench_once(model: str, *, threads: int, opts: BenchOptions = BenchOptions()) -> dict:
    """One configuration in THIS process."""
    import device_sim.model  # noqa: F401 - import OpenCV & co. before the baseline, not inside the footprint
    from contract.runtime import runtime_version
    from device_sim.loop import sleep_until
    from device_sim.memory import peak_rss_mb, rss_mb
    from device_sim.stats import summarize

    rss_before = rss_mb()
    invoke, inputs, init_s, desc = _runner(model, threads, opts)
    rss_init = rss_mb()
    t0 = time.perf_counter()
    invoke(inputs[0])
    first_ms = (time.perf_counter() - t0) * 1e3
    warm = []
    for i in range(opts.warmup_runs):
        t = time.perf_counter()
        invoke(inputs[i % len(inputs)])
        warm.append((time.perf_counter() - t) * 1e3)
    times, start = [], time.perf_counter()
    while len(times) < opts.runs or time.perf_counter() - start < opts.min_seconds:
        x = inputs[len(times) % len(inputs)]
        t = time.perf_counter()
        invoke(x)
        times.append((time.perf_counter() - t) * 1e3)
        if opts.run_delay_ms:   # like benchmark_model's --run_delay: idle time as between camera frames
            sleep_until(t + opts.run_delay_ms / 1e3)
    return {
        "model": desc, "threads": threads, "input": opts.input_kind, "run_delay_ms": opts.run_delay_ms,
        "runtime": runtime_version(), "init_ms": init_s * 1e3, "first_inference_ms": first_ms,
        "warmup": {"runs": opts.warmup_runs, "mean_ms": float(np.mean(warm)) if warm else None},
        "latency_ms": summarize(times),
        "memory_mb": {"before_load": rss_before, "after_init": rss_init, "init_footprint": rss_init - rss_before,
                      "overall_peak": peak_rss_mb()},
    }


def bench(model: str, *, threads: list[int], opts: BenchOptions = BenchOptions(),
          fresh_process: bool = True) -> list[dict]:
    """Every thread count, each in a fresh process unless fresh_process=False. A bad model fails
    here, once, before any worker starts."""
    if not fresh_process:
        return [bench_once(model, threads=t, opts=opts) for t in threads]
    _runner(model, 1, opts)
    return [_in_fresh_process(model, t, opts) for t in threads]


def _in_fresh_process(model: str, threads: int, opts: BenchOptions) -> dict:
    request = json.dumps({"model": model, "threads": threads, "opts": asdict(opts)})
    proc = subprocess.run([sys.executable, "-m", "device_sim.bench", request], capture_output=True, text=True)
    if proc.returncode == WORKER_USER_ERROR:   # the worker said what the user can fix, in one line
        raise UserError(proc.stderr.strip().splitlines()[-1].removeprefix("error: "))
    if proc.returncode != 0:
        raise RuntimeError(f"benchmark worker failed (exit {proc.returncode}):\n{proc.stderr.strip()[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def table(results: list[dict]) -> str:
    head = (f"{'model':<22} {'thr':>3} {'init ms':>8} {'first ms':>8} {'warm ms':>8} {'min':>7} {'p50':>7} "
            f"{'p90':>7} {'p99':>7} {'max':>7} {'runs':>5} {'init MB':>8} {'peak MB':>8}")
    rows = [head, "-" * len(head)]
    for r in results:
        lat, mem = r["latency_ms"], r["memory_mb"]
        name = f"{r['model']['name']}[{r['model']['format']}]"[:22]
        rows.append(f"{name:<22} {r['threads']:>3} {r['init_ms']:>8.1f} {r['first_inference_ms']:>8.2f} "
                    f"{r['warmup']['mean_ms'] or 0:>8.2f} {lat['min']:>7.3f} {lat['p50']:>7.3f} {lat['p90']:>7.3f} "
                    f"{lat['p99']:>7.3f} {lat['max']:>7.3f} {lat['count']:>5} {mem['init_footprint']:>8.1f} "
                    f"{mem['overall_peak']:>8.1f}")
    return "\n".join(rows + ["(host latency, ms; memory: resident MB of the benchmark process)"])


def _worker(argv: list[str]) -> int:
    """The fresh-process worker of bench(): one JSON request in argv, one JSON line out. Anything else is a
    user who took it for the command: one line saying which command to run."""
    try:
        req = json.loads(argv[0]) if len(argv) == 1 else None
    except ValueError:
        req = None
    if not (isinstance(req, dict) and {"model", "threads", "opts"} <= req.keys()):
        print(f"error: {WORKER_USAGE}", file=sys.stderr)
        return WORKER_USER_ERROR
    try:
        result = bench_once(req["model"], threads=req["threads"], opts=BenchOptions(**req["opts"]))
    except UserError as e:
        print(f"error: {' '.join(str(e).split())}", file=sys.stderr)
        return WORKER_USER_ERROR
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(_worker(sys.argv[1:]))
