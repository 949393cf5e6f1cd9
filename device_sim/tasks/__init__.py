"""Task kinds, one registered object each (device_sim.tasks.base.Task): classification, raw, segmentation,
detection, landmarks. A new kind is one file: a Task subclass, `register_task(MyTask())` at its end, and
an import of that file before the pipeline is loaded (the built-in ones are imported here). Code outside
this package asks the kind (`task_named(name)`, `model.task`, `stage.task`) instead of comparing its name."""

from __future__ import annotations

from contract.errors import UserError
from device_sim.tasks.base import Task

__all__ = ["Task", "register_task", "task_named", "task_names", "registered_tasks", "bare_task_names",
           "bare_default_task"]

_TASKS: dict[str, Task] = {}


def register_task(task: Task) -> Task:
    if not task.name or not task.name.replace("_", "").isalnum():
        raise ValueError(f"a task needs a name of letters, digits and _, got {task.name!r}")
    if task.name in _TASKS and type(_TASKS[task.name]) is not type(task):
        raise ValueError(f"task {task.name!r} is registered twice ({type(_TASKS[task.name]).__name__}, "
                         f"{type(task).__name__})")
    _TASKS[task.name] = task
    return task


def registered_tasks() -> list[Task]:
    return list(_TASKS.values())


def task_names() -> list[str]:
    return list(_TASKS)


def task_named(name: str, where: str = "") -> Task:
    """The registered kind called `name`; `where` (a file, a stage) starts the error's line."""
    if name not in _TASKS:
        raise UserError(f"{where + ': ' if where else ''}task {name!r} is not one of {', '.join(_TASKS)}; use one "
                        "of them, or register the kind (a file in device_sim/tasks/)")
    return _TASKS[name]


def bare_task_names() -> list[str]:
    """The kinds a single bare .tflite may be given on the command line (`--task`)."""
    return [t.name for t in _TASKS.values() if t.standalone]


def bare_default_task(has_labels: bool) -> str:
    """A bare model's kind when --task is not given: a classifier when it has labels, else raw."""
    return "classification" if has_labels else "raw"


def _load_builtin() -> None:
    import importlib

    for module in BUILTIN:
        importlib.import_module(f"device_sim.tasks.{module}")


BUILTIN = ("classification", "raw", "segmentation", "detection", "landmarks")   # one file each, in this order
_load_builtin()
