"""One decorator that times every export step, measures what it wrote, and prints one line."""

from __future__ import annotations

import functools
import time
from dataclasses import asdict, dataclass
from pathlib import Path

__all__ = ["StepRecord", "export_step", "path_size"]


@dataclass
class StepRecord:
    step: str
    seconds: float
    size_mb: float | None
    output: str | None

    def as_dict(self) -> dict:
        return asdict(self)


def path_size(path: Path) -> int:
    if path.is_dir():
        return sum(f.stat().st_size for f in path.rglob("*") if f.is_file())
    return path.stat().st_size


def export_step(name: str):
    """Decorates `fn(ctx, ...) -> Path | None`; appends a StepRecord to `ctx.steps` and prints it.
    `name` may use the step's keyword arguments, e.g. "validate {fmt}"."""

    def wrap(fn):
        @functools.wraps(fn)
        def run(ctx, *args, **kwargs):
            t0 = time.perf_counter()
            out = fn(ctx, *args, **kwargs)
            seconds = time.perf_counter() - t0
            label = name.format(**kwargs)
            size = path_size(out) / 1e6 if isinstance(out, Path) and out.exists() else None
            inside = isinstance(out, Path) and out.is_relative_to(ctx.staging)
            rel = str(out.relative_to(ctx.staging)) if inside else None
            ctx.steps.append(StepRecord(label, round(seconds, 2), None if size is None else round(size, 3), rel))
            if ctx.verbose:
                size_txt = f"{size:8.2f} MB" if size is not None else " " * 11
                print(f"  {label:<14} {seconds:6.1f} s {size_txt}  {rel or ''}", flush=True)
            return out

        return run

    return wrap
