"""Budgets of a device profile checked against a run: PASS/FAIL per budget, printed as a table."""

from __future__ import annotations

import numpy as np

__all__ = ["check_budgets", "budget_table"]


def check_budgets(profile, *, e2e_ms, peak_memory_mb: float, model_size_mb: float) -> list[dict]:
    pct = profile.latency_percentile
    latency = float(np.percentile(np.asarray(e2e_ms), pct)) if len(e2e_ms) else None
    emulated = ", emulated" if profile.slowdown > 1 else ""
    rows = [
        {"budget": f"latency p{pct:g} (end-to-end{emulated})", "limit": profile.latency_ms, "unit": "ms",
         "value": latency},
        {"budget": "peak memory (process RSS)", "limit": profile.memory_mb, "unit": "MB", "value": peak_memory_mb},
        {"budget": "model file size", "limit": profile.model_size_mb, "unit": "MB", "value": model_size_mb},
    ]
    for row in rows:
        row["pass"] = row["value"] is not None and row["value"] <= row["limit"]
    return rows


def budget_table(rows: list[dict], profile_name: str) -> str:
    lines = [f"budgets of profile {profile_name}:", f"  {'budget':<40} {'measured':>12} {'limit':>12}  result"]
    for r in rows:
        value = "n/a" if r["value"] is None else f"{r['value']:.2f} {r['unit']}"
        limit = f"{r['limit']:.2f} {r['unit']}"
        lines.append(f"  {r['budget']:<40} {value:>12} {limit:>12}  {'PASS' if r['pass'] else 'FAIL'}")
    return "\n".join(lines)
