"""device_sim runs on a device that has only the TFLite runtime, numpy, OpenCV and psutil: prove it by
running it with torch, tensorflow, edgevit, export and onnx made unimportable."""

from __future__ import annotations

import json
import subprocess
import sys

from conftest import ROOT

BLOCKER = """
import sys, importlib.abc
BLOCKED = ("torch", "tensorflow", "edgevit", "export", "onnx", "onnx2tf", "onnxruntime", "tf_keras", "keras")
class Block(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in BLOCKED:
            raise ImportError(f"blocked on the device: {name}")
sys.meta_path.insert(0, Block())
"""


def _run_blocked(code: str, timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", BLOCKER + code], cwd=ROOT, capture_output=True, text=True,
                          timeout=timeout)


def test_blocker_really_blocks():
    proc = _run_blocked("import torch")
    assert proc.returncode != 0 and "blocked on the device" in proc.stderr


def test_every_device_sim_module_imports_without_the_training_stack():
    proc = _run_blocked("""
import pkgutil, importlib, device_sim, contract, edgevit_cli
names = [m.name for pkg in (device_sim, contract) for m in pkgutil.walk_packages(pkg.__path__, pkg.__name__ + ".")
         if not m.name.endswith("__main__")] + ["edgevit_cli.main", "edgevit_cli.simulate", "edgevit_cli.bench"]
for n in names:
    importlib.import_module(n)
print(len(names))
""")
    assert proc.returncode == 0, proc.stderr
    assert int(proc.stdout.strip()) >= 20


def test_bench_and_simulate_run_blocked(tiny_export, tmp_path):
    code = f"""
import json, sys
from edgevit_cli.main import main
rc1 = main(["bench", {str(tiny_export / 'int8')!r}, "--threads", "1", "--runs", "20", "--min-seconds", "0.2",
             "--json", {str(tmp_path / 'bench.json')!r}])
rc2 = main(["simulate", "--model", {str(tiny_export / 'int8')!r}, "--frames", "40", "--max-speed", "--no-video",
           "--out", {str(tmp_path / 'sim')!r}])
assert "torch" not in sys.modules and "tensorflow" not in sys.modules
print(rc1, rc2)
"""
    proc = _run_blocked(code)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip().splitlines()[-1] == "0 0", proc.stdout
    assert json.loads((tmp_path / "bench.json").read_text())["results"][0]["latency_ms"]["count"] >= 20
    assert json.loads((tmp_path / "sim" / "report.json").read_text())["frames"]["processed"] == 40


def test_device_sim_loads_every_exported_artifact_from_model_json_alone(tiny_export):
    code = f"""
import numpy as np
from device_sim.model import DeployedModel
pack = np.load({str(tiny_export / 'samples.npz')!r})
for fmt in ("fp32", "fp16", "int8"):
    m = DeployedModel.load({str(tiny_export)!r} + "/" + fmt, threads=1)
    preds = [m.postprocess(m.invoke(m.to_input(im[None]))).label for im in pack["images"][:100]]
    acc = float(np.mean(np.array(preds) == pack["labels"][:100]))
    print(fmt, m.input_dtype, acc)
"""
    proc = _run_blocked(code)
    assert proc.returncode == 0, proc.stderr
    lines = dict((ln.split()[0], ln.split()[1:]) for ln in proc.stdout.strip().splitlines())
    assert lines["int8"][0] == "uint8" and lines["fp32"][0] == "float32"
    assert all(float(v[1]) >= 0.9 for v in lines.values()), lines


def test_edgevit_simulate_does_not_import_torch(tiny_export, tmp_path):
    """The `edgevit` dispatcher imports a subcommand lazily: `edgevit simulate` never loads torch."""
    code = f"""
import sys
from edgevit_cli.main import main
rc = main(["simulate", "--model", {str(tiny_export / 'int8')!r}, "--frames", "20", "--max-speed", "--no-video",
           "--out", {str(tmp_path / 's')!r}])
print(rc, "torch" in sys.modules, "tensorflow" in sys.modules)
"""
    proc = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip().splitlines()[-1] == "0 False False", proc.stdout


def test_contract_loads_opencv_and_the_runtime_only_when_called():
    """ARCHITECTURE.md: contract is numpy + stdlib at import; OpenCV (resize_to_model) and the TFLite runtime
    (interpreter_class) load only inside the functions that use them."""
    code = """
import pkgutil, importlib, sys, contract
for m in pkgutil.walk_packages(contract.__path__, "contract."):
    importlib.import_module(m.name)
heavy = sorted(n for n in ("cv2", "ai_edge_litert", "tflite_runtime", "torch", "tensorflow") if n in sys.modules)
from contract.images import resize_to_model
import numpy as np
resize_to_model(np.zeros((8, 8, 3), np.uint8), 4)
print(heavy, "cv2" in sys.modules)
"""
    proc = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == ["[]", "True"], proc.stdout
