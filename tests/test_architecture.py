"""The house rules, checked on the source: one copy of the contract, imports down the arrows only,
short functions, and data loading without torch."""

from __future__ import annotations

import ast
import re
import subprocess
import sys
from pathlib import Path

from conftest import ROOT

LIBRARIES = ("contract", "edgevit", "export", "device_sim", "search", "edgevit_cli")
MAX_FUNCTION_LINES = 60   # body lines, docstring excluded


def _sources(*packages: str):
    for pkg in packages:
        yield from sorted((ROOT / pkg).rglob("*.py"))


def _imports(path) -> set[str]:
    """Top-level package names this file imports (module level and inside functions)."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names |= {a.name.split(".")[0] for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module.split(".")[0])
    return names


def test_the_schema_string_lives_in_one_module():
    python = [p for p in ROOT.rglob("*.py") if ".venv" not in p.parts and "build" not in p.parts]
    schema = "edgevit" + ".model/1"   # spelled in two parts so this test is not a holder itself
    holders = sorted(str(p.relative_to(ROOT)) for p in python if schema in p.read_text())
    assert holders == ["contract/card.py"], holders


def test_device_and_export_preprocess_through_the_contract():
    """The functions that turn pixels into a model input (and outputs into numbers) are defined once,
    in contract, and both sides import them from there."""
    defined = {}
    for path in _sources(*LIBRARIES):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.FunctionDef) and node.name in ("quantize_input", "dequantize_output",
                                                                   "resize_to_model", "center_square"):
                defined.setdefault(node.name, []).append(str(path.relative_to(ROOT)))
    assert defined == {"quantize_input": ["contract/quant.py"], "dequantize_output": ["contract/quant.py"],
                       "resize_to_model": ["contract/images.py"], "center_square": ["contract/images.py"]}, defined
    for side in ("device_sim/model.py", "export/litert.py"):
        text = (ROOT / side).read_text()
        assert "from contract.quant import dequantize_output, quantize_input" in text, side
        assert re.search(r"^from contract\.images import [\w, ]*\bresize_to_model\b", text, flags=re.M), side


def test_imports_go_down_the_arrows():
    allowed = {
        "contract": {"contract"},
        "edgevit": {"edgevit", "contract"},
        "export": {"export", "edgevit", "contract"},
        "device_sim": {"device_sim", "contract"},
        "search": {"search", "export", "edgevit", "device_sim", "contract"},   # above every library, below the CLI
    }
    project = set(LIBRARIES) | {"benchmarks"}
    for pkg, ok in allowed.items():
        for path in _sources(pkg):
            if pkg == "device_sim" and path.name == "__main__.py":
                continue   # `python -m device_sim` is an alias of the command layer's `edgevit simulate`
            bad = (_imports(path) & project) - ok
            assert not bad, f"{path.relative_to(ROOT)} imports {sorted(bad)}"


def test_no_long_functions_in_library_code():
    long = []
    for path in _sources(*LIBRARIES, "benchmarks"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                body = node.body[1:] if ast.get_docstring(node) else node.body
                if body and body[-1].end_lineno - body[0].lineno + 1 > MAX_FUNCTION_LINES:
                    long.append(f"{path.relative_to(ROOT)}:{node.lineno} {node.name}")
    assert not long, long


def test_loading_the_digits_needs_no_torch():
    code = """
import sys, importlib.abc
class Block(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in ("torch", "tensorflow"):
            raise ImportError("blocked: " + name)
sys.meta_path.insert(0, Block())
from edgevit.data import load_dataset
d = load_dataset("digits", 64)
print(d.train_x.shape[1:], "torch" in sys.modules)
"""
    proc = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == ["(64,", "64,", "3)", "False"], proc.stdout


def test_one_version_string():
    import contract

    holders = [str(p.relative_to(ROOT)) for p in _sources(*LIBRARIES) if '"0.1.0"' in p.read_text()]
    assert holders == [], holders
    from edgevit_cli.main import main

    proc = subprocess.run([sys.executable, "-m", "edgevit_cli", "--version"], cwd=ROOT, capture_output=True,
                          text=True, timeout=60)
    assert proc.stdout.strip() == f"edgevit {contract.__version__}" and main is not None


def _task_name_uses(tree: ast.AST, names: set[str]) -> list[tuple[int, str]]:
    """Where a task name is compared to a string (==, !=, in, a match case), or spelled as a copy of the
    registry: a tuple / list / set with two or more task names, or a dict keyed by one."""
    def named(node) -> bool:
        return isinstance(node, ast.Constant) and node.value in names

    def holds(node) -> bool:
        return named(node) or (isinstance(node, (ast.Tuple, ast.List, ast.Set)) and any(map(named, node.elts)))

    found, compared = [], set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Compare) and any(holds(n) for n in (node.left, *node.comparators)):
            found.append((node.lineno, "compared"))
            compared |= {id(n) for n in (node.left, *node.comparators)}
        elif id(node) in compared:
            continue
        elif isinstance(node, ast.MatchValue) and named(node.value):
            found.append((node.lineno, "matched"))
        elif isinstance(node, (ast.Tuple, ast.List, ast.Set)) and sum(map(named, node.elts)) >= 2:
            found.append((node.lineno, "listed"))
        elif isinstance(node, ast.Dict) and any(k is not None and named(k) for k in node.keys):
            found.append((node.lineno, "keyed"))
    return found


def test_no_task_name_is_compared_outside_the_task_modules():
    """A task kind owns its behaviour (device_sim/tasks/, one file each): nothing else decides by its name."""
    from device_sim.tasks import task_names

    names = set(task_names())
    assert {"classification", "raw", "segmentation", "detection", "landmarks"} <= names
    tasks_dir = ROOT / "device_sim" / "tasks"
    found = [f"{path.relative_to(ROOT)}:{line} {how}" for path in _sources(*LIBRARIES, "benchmarks")
             if tasks_dir not in path.parents for line, how in _task_name_uses(ast.parse(path.read_text()), names)]
    assert not found, found


def test_the_task_name_check_finds_what_it_looks_for():
    """The check above on code written the old way: each kind of use is found."""
    names = {"classification", "raw", "detection"}
    code = """
if model.task == "classification": pass
if task in ("raw", "detection"): pass
if "detection" != spec.task: pass
choices = ("classification", "raw")
required = {"detection": ("anchors",)}
match task:
    case "raw": pass
label = "raw pixels" if other == "rgb" else "detection"
"""
    assert sorted(_task_name_uses(ast.parse(code), names)) == \
        [(2, "compared"), (3, "compared"), (4, "compared"), (5, "listed"), (6, "keyed"), (8, "matched")]


def _format_name_comparisons(tree: ast.AST, names: set[str], exempt: frozenset[str] = frozenset()) -> list[int]:
    """Lines where a format name is compared to a string (==, !=, in, a match case), outside the functions
    named in `exempt`. A comparison of a dtype (a tensor's, a published number's) is not one: "int8" is
    also a dtype."""
    skip = {id(n) for f in ast.walk(tree) if isinstance(f, ast.FunctionDef) and f.name in exempt
            for n in ast.walk(f)}

    def names_one(node) -> bool:
        return any(isinstance(c, ast.Constant) and c.value in names for c in ast.walk(node))

    found = set()
    for node in ast.walk(tree):
        if id(node) in skip:
            continue
        if isinstance(node, ast.Compare) and names_one(node) and "dtype" not in ast.unparse(node):
            found.add(node.lineno)
        elif isinstance(node, ast.MatchValue) and names_one(node):
            found.add(node.lineno)
    return sorted(found)


def test_no_format_name_is_compared_outside_the_format_registry():
    """An export format owns its behaviour (export/formats.py: arithmetic, calibration, debug hook): nothing
    else decides by its name. The one exception reads cards written before they recorded the arithmetic."""
    from export.formats import FORMATS

    names = set(FORMATS)
    assert {"onnx", "fp32", "fp16", "int8"} <= names
    legacy = {"contract/card.py": frozenset({"card_arithmetic"})}
    found = []
    for path in _sources(*LIBRARIES, "benchmarks"):
        rel = str(path.relative_to(ROOT))
        if rel != "export/formats.py":
            tree = ast.parse(path.read_text())
            found += [f"{rel}:{line}" for line in _format_name_comparisons(tree, names, legacy.get(rel, frozenset()))]
    assert not found, found


def test_the_format_name_check_finds_what_it_looks_for():
    names = {"fp32", "int8"}
    code = """
if fmt == "int8": pass
needed = "int8" in formats
quantized = dtype in ("uint8", "int8")
def card_arithmetic(card):
    return "int8" if card.get("format") == "int8" else "fp32"
match fmt:
    case "fp32": pass
"""
    tree = ast.parse(code)
    assert _format_name_comparisons(tree, names) == [2, 3, 6, 8]
    assert _format_name_comparisons(tree, names, frozenset({"card_arithmetic"})) == [2, 3, 8]


def test_tests_hold_on_any_machine():
    """A test that sends SIGINT to a child starts it with conftest.start_cli (the default SIGINT disposition:
    a background job's children inherit SIGINT ignored), and no test looks at processes beyond its own tree:
    /proc is read only for the processes carrying the test's own tag (EDGEVIT_TEST_TAG), never by name."""
    for path in sorted((ROOT / "tests").glob("test_*.py")):
        if path.name == Path(__file__).name:
            continue   # this file names what it looks for
        text = path.read_text()
        calls = [n for n in ast.walk(ast.parse(text)) if isinstance(n, ast.Call)]
        sigint = [n for n in calls if ast.unparse(n.func).split(".")[-1] in ("send_signal", "kill", "killpg")
                  and "SIGINT" in ast.unparse(n)]
        popen = [n for n in calls if ast.unparse(n.func).split(".")[-1] == "Popen"]
        assert not (sigint and popen), f"{path.name}: sends SIGINT to a child not started by start_cli"
        assert not any(w in text for w in ("process_iter", "pgrep", "pidof")), f"{path.name} looks up processes by name"
        if '"/proc"' in text or "'/proc'" in text:
            assert "EDGEVIT_TEST_TAG" in text, f"{path.name} reads /proc without its own tag"
