"""Runs a .tflite on the aarch64 runtime under qemu-user for a named core (device_sim.arm.cores):
instructions per steady-state inference, and the outputs for a cross-ISA fidelity check.

Instructions per inference = (count(K invokes) - count(0 invokes)) / K: loading, allocation and
Python's own start-up are in both runs and cancel. The count is deterministic for a given model,
input, core model and runtime build. Emulated wall time is NOT device time (qemu's cost per guest
instruction varies by instruction kind): only the counts are used.
"""

from __future__ import annotations

import json
import os
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from contract.errors import UserError
from device_sim.arm.cores import Core, cpuinfo

__all__ = ["ArmEnv", "find_env", "check_env", "instructions_per_inference", "run_outputs",
           "ARM_DIR_ENV", "instructions_per_segment",
           "prepost_per_invocation"]

ARM_DIR_ENV = "EDGEVIT_ARM_DIR"
DEFAULT_ARM_DIR = ".arm"
GUEST = Path(__file__).with_name("guest.py")
PREPOST_GUEST = Path(__file__).with_name("prepost_guest.py")
PROJECT_ROOT = Path(__file__).resolve().parents[2]   # device_sim's and contract's folder, for prepost_guest.py
GUEST_TIMEOUT_S = 1800


@dataclass(frozen=True)
class ArmEnv:
    root: Path

    @property
    def sysroot(self) -> Path:
        return self.root / "sysroot"

    @property
    def site(self) -> Path:
        return self.root / "site"

    @property
    def plugin(self) -> Path:
        return self.root / "plugin" / "libinsn.so"

    @property
    def python(self) -> Path:
        return self.sysroot / "usr" / "bin" / "python3.11"

    def versions(self) -> dict:
        qemu = subprocess.run(["qemu-aarch64", "--version"], capture_output=True, text=True).stdout.splitlines()
        litert = sorted(p.name for p in self.site.glob("ai_edge_litert-*.dist-info"))
        return {"emulator": qemu[0] if qemu else "qemu-aarch64 (unknown version)",
                "runtime": litert[0].removesuffix(".dist-info").replace("-", " ", 1) if litert else "unknown",
                "guest_python": "Debian arm64 python3.11"}


def find_env(arm_dir: str | Path | None = None) -> ArmEnv:
    """The environment `make arm-setup` built (EDGEVIT_ARM_DIR, or ./.arm, or the project's .arm beside this
    code); a UserError saying how to build it when it is missing."""
    given = arm_dir or os.environ.get(ARM_DIR_ENV)
    # ./.arm, else the one `make arm-setup` built beside this code: the projection must not depend on the folder
    # a command is started from
    root = Path(given).resolve() if given else next(
        (p for p in (Path(DEFAULT_ARM_DIR).resolve(), PROJECT_ROOT / DEFAULT_ARM_DIR) if p.is_dir()),
        Path(DEFAULT_ARM_DIR).resolve())
    env = ArmEnv(root)
    missing = [str(p) for p in (env.python, env.site / "ai_edge_litert", env.plugin) if not p.exists()]
    if missing:
        raise UserError(f"no aarch64 environment at {root} (missing {missing[0]}); run `make arm-setup` "
                        f"(or point {ARM_DIR_ENV} at one)")
    from shutil import which

    if which("qemu-aarch64") is None:
        raise UserError("qemu-aarch64 is not installed; run `make arm-setup` (it installs Debian's qemu-user)")
    return env


def _core_root(env: ArmEnv, core: Core) -> Path:
    """A per-core view of the sysroot: symlinks to its folders plus this core's /proc/cpuinfo (qemu's -L
    serves the guest's absolute paths from here first)."""
    root = env.root / "cores" / core.name
    (root / "proc").mkdir(parents=True, exist_ok=True)
    for entry in env.sysroot.iterdir():
        link = root / entry.name
        if entry.name != "proc" and not link.exists():
            link.symlink_to(entry.resolve())
    (root / "proc" / "cpuinfo").write_text(cpuinfo(core) + "\n")
    return root


def _run_guest(env: ArmEnv, core: Core, request: dict, *, count: bool, script: Path = GUEST,
               path: tuple[Path, ...] = ()) -> list[int] | None:
    """Runs `script` (guest.py) on `request`, with `path` after the wheels on the guest's PYTHONPATH; with
    count=True returns [total, mark 1, mark 2, ...] (guest instructions)."""
    root = _core_root(env, core)
    with tempfile.TemporaryDirectory(prefix="edgevit-target-") as tmp:
        req = Path(tmp) / "request.json"
        req.write_text(json.dumps(request))
        counter = Path(tmp) / "count.txt"
        cmd = ["qemu-aarch64", "-L", str(root), "-cpu", core.qemu_cpu]
        if count:
            cmd += ["-plugin", f"{env.plugin},out={counter}", "-d", "plugin"]
        cmd += [str(env.python), "-s", str(script), str(req)]
        from device_sim.sources.photo import models_dir

        pythonpath = os.pathsep.join(str(p) for p in (env.site, *path))
        guest_env = {"PATH": os.environ.get("PATH", ""), "PYTHONPATH": pythonpath, "PYTHONNOUSERSITE": "1",
                     "PYTHONHASHSEED": "0",   # the same dict orders in every run: counts repeat
                     # a run never writes .pyc files into the sysroot, so no run is cheaper than the one before
                     # (make arm-setup byte-compiles everything once)
                     "PYTHONDONTWRITEBYTECODE": "1",
                     "OMP_NUM_THREADS": "1", "TF_CPP_MIN_LOG_LEVEL": "2",
                     # the models a pipeline names, found where the host found them (prepost_guest loads it again)
                     "EDGEVIT_MODELS_DIR": str(models_dir().resolve())}
        try:
            proc = subprocess.run(cmd, capture_output=True, text=True, env=guest_env, timeout=GUEST_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            raise UserError(f"the aarch64 run on {core.name} did not finish within {GUEST_TIMEOUT_S:g} s (qemu on a "
                            "busy host, or a very large model or frame); run it again on a quieter host") from None
        if proc.returncode != 0:
            last = (proc.stderr.strip().splitlines() or [f"exit {proc.returncode}"])[-1]
            raise UserError(f"the aarch64 run on {core.name} failed: {last[:200]}")
        if not count:
            return None
        lines = counter.read_text().split("\n")
        return [int(lines[0])] + [int(ln.split()[1]) for ln in lines[1:] if ln.startswith("mark ")]


def instructions_per_inference(env: ArmEnv, core: Core, tflite: Path, inputs: np.ndarray, *,
                               invokes: int = 5) -> dict:
    """Steady-state instructions of one inference, one thread: after a warm-up inference, `invokes` inferences
    (each setting its input, cycling through `inputs`) are framed by two marks (guest.py) and the count between
    them divided by `invokes`. Exactly repeatable: the difference of two whole runs (with and without the
    inferences) it replaced varied by a few thousand instructions from run to run with the guest's start-up."""
    with tempfile.TemporaryDirectory(prefix="edgevit-target-") as tmp:
        xs = Path(tmp) / "inputs.npy"
        np.save(xs, inputs)
        counts = _run_guest(env, core, {"model": str(Path(tflite).resolve()), "threads": 1, "inputs": str(xs),
                                        "invokes": invokes, "outputs": None, "marks": True}, count=True)
    marks = counts[1:]
    if len(marks) != 2:
        raise RuntimeError(f"expected 2 marks from the guest, got {len(marks)}: is the counting plugin older than "
                           "device_sim/arm/insn_count.c? (re-run `make arm-setup`)")
    return {"per_inference": (marks[1] - marks[0]) / invokes, "invokes": invokes, "threads": 1,
            "method": "steady state: warm-up, then the inferences between two marks"}


def instructions_per_segment(env: ArmEnv, core: Core, models: list[tuple[Path, np.ndarray]], *,
                             invokes: int = 2) -> list[float]:
    """Steady-state instructions of one inference of each model, all measured in ONE guest run: each model
    is loaded, allocated and invoked once, then `invokes` inferences are framed by two marks (guest.py).
    Python's start-up is paid once, not per model: this is how a table of hundreds of blocks is counted."""
    with tempfile.TemporaryDirectory(prefix="edgevit-target-") as tmp:
        segs = []
        for i, (tflite, x) in enumerate(models):
            xs = Path(tmp) / f"inputs{i}.npy"
            np.save(xs, x)
            segs.append({"model": str(Path(tflite).resolve()), "inputs": str(xs)})
        counts = _run_guest(env, core, {"segments": segs, "threads": 1, "invokes": invokes}, count=True)
    marks = counts[1:]
    if len(marks) != 2 * len(models):
        raise RuntimeError(f"expected {2 * len(models)} marks from the guest, got {len(marks)}: is the counting "
                           "plugin older than device_sim/arm/insn_count.c? (re-run `make arm-setup`)")
    return [(marks[2 * i + 1] - marks[2 * i]) / invokes for i in range(len(models))]


def prepost_per_invocation(env: ArmEnv, core: Core, units: list[dict], *, invokes: int = 3) -> list[dict]:
    """Instructions of one preprocessing and one postprocessing of each unit (prepost_guest.py says what a
    unit is), all in ONE guest run that imports the project's own device_sim: the code counted is the code
    the simulator runs."""
    counts = _run_guest(env, core, {"units": units, "invokes": invokes}, count=True, script=PREPOST_GUEST,
                        path=(PROJECT_ROOT,))
    marks = counts[1:]
    if len(marks) != 3 * len(units):
        raise RuntimeError(f"expected {3 * len(units)} marks from the guest, got {len(marks)}: is the counting "
                           "plugin older than device_sim/arm/insn_count.c? (re-run `make arm-setup`)")
    return [{"preprocess": (marks[3 * i + 1] - marks[3 * i]) / invokes,
             "postprocess": (marks[3 * i + 2] - marks[3 * i + 1]) / invokes} for i in range(len(units))]


def run_outputs(env: ArmEnv, core: Core, tflite: Path, inputs: np.ndarray) -> np.ndarray:
    """Raw outputs of the model on aarch64 for each input (no counting)."""
    with tempfile.TemporaryDirectory(prefix="edgevit-target-") as tmp:
        xs, ys = Path(tmp) / "inputs.npy", Path(tmp) / "outputs.npy"
        np.save(xs, inputs)
        _run_guest(env, core, {"model": str(Path(tflite).resolve()), "threads": 1, "inputs": str(xs),
                               "invokes": len(inputs), "outputs": str(ys)}, count=False)
        return np.load(ys)


def check_env(env: ArmEnv) -> str:
    """Imports numpy and the runtime in the emulated Python; returns what it reports."""
    code = ("import platform, numpy, ai_edge_litert.interpreter as i; "
            "print(platform.machine(), 'python', platform.python_version(), 'numpy', numpy.__version__)")
    from device_sim.arm.cores import CORES

    core = CORES["cortex-a76"]
    proc = subprocess.run(["qemu-aarch64", "-L", str(_core_root(env, core)), "-cpu", core.qemu_cpu, str(env.python),
                           "-s", "-c", code], capture_output=True, text=True, timeout=600,
                          env={"PYTHONPATH": str(env.site), "PATH": os.environ.get("PATH", ""),
                               "PYTHONDONTWRITEBYTECODE": "1"})
    if proc.returncode != 0:
        raise UserError(f"the aarch64 python does not start: {(proc.stderr.strip().splitlines() or ['?'])[-1]}")
    return f"aarch64 environment {env.root}: {proc.stdout.strip()}"
