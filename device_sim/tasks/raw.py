"""raw: run and time the model, every output dequantized but not decoded (a bare .tflite's default)."""

from __future__ import annotations

from device_sim.tasks import register_task
from device_sim.tasks.base import Task

__all__ = ["Raw"]


class Raw(Task):
    name = "raw"
    standalone = True


register_task(Raw())
