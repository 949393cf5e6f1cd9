"""What a search folder shows: trials.csv (every trial, trained or rejected, with its projected latency
on each budget profile) and pareto.png (validation accuracy vs projected latency on each profile, the
Pareto front, the budget, and the reference models trained with the same proxy recipe)."""

from __future__ import annotations

import csv
import io
from pathlib import Path

from contract.files import atomic_write

__all__ = ["trial_rows", "write_trials_csv", "pareto_front", "plot_pareto"]


def trial_rows(study, profiles: tuple[str, ...]) -> list[dict]:
    rows = []
    for t in study.get_trials(deepcopy=False):
        lat = t.user_attrs.get("latency", {})
        row = {"trial": t.number, "state": t.state.name.lower(), "design": t.user_attrs.get("design", ""),
               "val_acc": "" if t.value is None else round(t.value, 5),
               "rejected": t.user_attrs.get("rejected", ""), "same_as": t.user_attrs.get("same_as", ""),
               "retry_of": t.user_attrs.get("retry_of", ""), "worker": t.user_attrs.get("worker", ""),
               "train_seconds": round(t.user_attrs.get("train_seconds") or 0, 1) or ""}
        for p in profiles:
            r = lat.get(p, {})
            row[f"{p}_ms"] = round(r["ms"], 3) if r else ""
            row[f"{p}_ratio"] = round(r["ratio"], 4) if r else ""
        row.update({k: v for k, v in t.params.items()})
        rows.append(row)
    return rows


def write_trials_csv(study, profiles: tuple[str, ...], path: Path) -> None:
    rows = trial_rows(study, profiles)
    fields = list(dict.fromkeys(k for r in rows for k in r)) or ["trial"]
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=fields)
    writer.writeheader()
    writer.writerows(rows)
    atomic_write(path, lambda p: p.write_text(buf.getvalue()))


def pareto_front(points: list[tuple[float, float]]) -> list[tuple[float, float]]:
    """(latency, accuracy) points no other point beats on both (lower latency, higher accuracy), by latency."""
    front, best = [], float("-inf")
    for x, y in sorted(points, key=lambda p: (p[0], -p[1])):
        if y > best:
            front.append((x, y))
            best = y
    return front


def plot_pareto(trained: list[dict], references: dict, budget, path: Path) -> None:
    """trained: [{"val_acc", "latency": {profile: {"ms", ...}}}]; references: {name: same}."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from search.budget import project

    profiles = budget.profiles
    baseline_ms = {p: r["ms"] for p, r in project(budget.baseline, budget).items()} if budget.max_ratio else {}
    fig, axes = plt.subplots(1, len(profiles), figsize=(5.5 * len(profiles), 4.4), squeeze=False)
    for ax, prof in zip(axes[0], profiles):
        pts = [(t["latency"][prof]["ms"], 100 * t["val_acc"]) for t in trained]
        if pts:
            ax.scatter(*zip(*pts), s=16, color="tab:blue", alpha=0.6, label="searched designs (trained)")
            front = pareto_front(pts)
            ax.plot(*zip(*front), color="tab:blue", lw=1.2, drawstyle="steps-post", label="Pareto front")
        for name, ref in sorted(references.items()):
            x, y = ref["latency"][prof]["ms"], 100 * ref["val_acc"]
            mobile = name.startswith("mobilenet")
            ax.scatter([x], [y], marker="s" if mobile else "^", s=40, color="tab:red" if mobile else "tab:green")
            ax.annotate(name.replace("_100", ""), (x, y), fontsize=7, xytext=(3, 3), textcoords="offset points")
        limit = budget.max_ratio * baseline_ms[prof] if budget.max_ratio is not None else budget.max_ms
        if limit:
            ax.axvline(limit, color="gray", ls="--", lw=1, label=f"budget ({budget.limit_text()})")
        core = next((t["latency"][prof]["core"] for t in trained), "")
        ax.set_title(f"{prof} ({core}), {budget.img}x{budget.img}", fontsize=10)
        ax.set_xlabel("projected int8 latency, 1 thread (ms)")
        ax.set_ylabel("validation accuracy, proxy recipe (%)")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7, loc="lower right")
    fig.suptitle("edgevit search: accuracy vs projected device latency (red: MobileNets, green: edgevit family)",
                 fontsize=10)
    fig.tight_layout()
    atomic_write(path, lambda p: fig.savefig(p, dpi=110, format="png"))
    plt.close(fig)
