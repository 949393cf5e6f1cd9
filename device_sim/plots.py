"""latency.png and memory.png. matplotlib is imported here only, after the loop has finished. The
limit lines are the profile's budgets that the budget registry assigns to each plot."""

from __future__ import annotations

from pathlib import Path

from device_sim.frames import stage_column

__all__ = ["plot_latency", "plot_memory"]

LIMIT_STYLES = ("--", "-.", ":")


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _limits(ax, limits: list[tuple[str, float]], unit: str) -> None:
    for i, (title, value) in enumerate(limits):
        ax.axhline(value, color="red", ls=LIMIT_STYLES[i % len(LIMIT_STYLES)], lw=1,
                   label=f"budget: {title} {value:g} {unit}")


def plot_latency(path: Path, records, device: str, title: str, limits: list[tuple[str, float]],
                 stages: list[str] = ()) -> None:
    """`device`: how the device's latency was obtained (e.g. "projected, cortex-a55 @ 1.8 GHz x2", "host").
    `stages`: a pipeline's stage names; each stage's time per frame is drawn (its <stage>_ms column)."""
    plt = _plt()
    t = [r.capture_s for r in records]
    fig, (ax, hist) = plt.subplots(1, 2, figsize=(12, 4.2), gridspec_kw={"width_ratios": [3, 1]})
    ax.plot(t, [r.e2e_ms for r in records], lw=0.9, label=f"end-to-end (capture to result; {device})")
    for name in stages:
        ax.plot(t, [r.columns[stage_column(name, "ms")] for r in records], lw=0.8, alpha=0.85,
                label=f"stage {name} (0 = skipped; {device})")
    if not stages:
        ax.plot(t, [r.inference_ms for r in records], lw=0.8, label=f"inference ({device})")
    if not device.startswith("host") and not stages:
        ax.plot(t, [r.inference_host_ms for r in records], lw=0.8, label="inference, measured on this host")
    _limits(ax, limits, "ms")
    missed = [r for r in records if not r.deadline_met]
    if missed:
        ax.scatter([r.capture_s for r in missed], [r.e2e_ms for r in missed], s=8, color="red", zorder=3,
                   label=f"deadline missed ({len(missed)})")
    ax.set_xlabel("capture time (s)")
    ax.set_ylabel("ms")
    ax.set_title(title, fontsize=10)
    ax.legend(fontsize=7, loc="upper right")
    ax.grid(alpha=0.3)
    hist.hist([r.e2e_ms for r in records], bins=40, orientation="horizontal", color="tab:blue", alpha=0.8)
    _limits(hist, limits, "ms")
    hist.set_xlabel("frames")
    hist.set_title("end-to-end latency", fontsize=10)
    hist.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def plot_memory(path: Path, records, memory: dict, title: str, limits: list[tuple[str, float]]) -> None:
    plt = _plt()
    fig, ax = plt.subplots(figsize=(9, 3.8))
    ax.plot([r.capture_s for r in records], [r.rss_mb for r in records], lw=1,
            label="simulator process RSS per frame (Python, numpy, OpenCV: not the device's)")
    device = memory.get("device")
    if device:
        ax.axhline(device["total_mb"], color="black", lw=1.6,
                   label=f"device memory {device['total_mb']:.1f} MB (model {device['model_file_mb']:.1f} + runtime "
                         f"{device['runtime_mb']:.1f} + camera {device['camera_buffers_mb']:.1f})")
    ax.axhline(memory["before_load_mb"], color="gray", ls=":", lw=1,
               label=f"before loading {memory['before_load_mb']:.1f} MB")
    ax.axhline(memory["after_allocate_mb"], color="tab:green", ls=":", lw=1,
               label=f"after allocate_tensors {memory['after_allocate_mb']:.1f} MB")
    _limits(ax, limits, "MB")
    ax.set_ylim(0, max([memory["peak_mb"], *(v for _, v in limits)]) * 1.15)
    ax.set_xlabel("capture time (s)")
    ax.set_ylabel("MB")
    ax.set_title(title, fontsize=10)
    ax.legend(fontsize=7, loc="lower right")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
