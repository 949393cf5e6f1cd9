"""The README is a contract: every make target and CLI option it shows exists, and its Python example runs."""

from __future__ import annotations

import json
import re
import subprocess
import sys

import pytest
from conftest import ROOT, run_cli

README = (ROOT / "README.md").read_text()


def _code_blocks(lang: str) -> list[str]:
    return re.findall(rf"```{lang}\n(.*?)```", README, flags=re.S)


def _makefile_targets() -> set[str]:
    return set(re.findall(r"^([a-z][a-z-]*):", (ROOT / "Makefile").read_text(), flags=re.M))


def test_every_make_target_in_readme_exists():
    used = set(re.findall(r"`make ([a-z][a-z-]*)", README))
    used |= {m for block in _code_blocks("bash") for m in re.findall(r"^make ([a-z][a-z-]*)", block, flags=re.M)}
    assert {"demo", "test"} <= used, "the README must show the two commands"
    missing = used - _makefile_targets()
    assert not missing, f"README mentions make targets the Makefile lacks: {sorted(missing)}"


def _cli_lines() -> list[list[str]]:
    lines = []
    for block in _code_blocks("bash"):
        for line in block.splitlines():
            line = line.split("#", 1)[0].strip()
            if line.startswith(".venv/bin/edgevit "):
                lines.append(line.split()[1:])
    return lines


def test_every_cli_example_option_exists():
    lines = _cli_lines()
    assert {args[0] for args in lines} >= {"info", "train", "export", "simulate", "bench"}
    for args in lines:
        sub = args[0]
        help_text = run_cli(sub, "--help").stdout
        assert f"usage: edgevit {sub}" in help_text, f"edgevit {sub} --help failed"
        for opt in (a for a in args[1:] if a.startswith("--")):
            assert re.search(rf"{re.escape(opt)}\b", help_text), f"README: `edgevit {sub} {opt}` is not in --help"


def test_prose_options_exist():
    """Options named in the README's prose (`--ema-decay 0.998`, `--max-speed`, ...) exist on the command
    the sentence is about."""
    for sub in ("train", "simulate", "bench"):
        help_text = run_cli(sub, "--help").stdout
        section = re.search(rf"`edgevit {sub}`?[^\n]*options?.*?(?:\n\n)", README, flags=re.S)
        options = set(re.findall(r"`(--[a-z-]+)", section.group(0) if section else ""))
        if sub == "bench":
            options |= set(re.findall(r"`edgevit bench (--[a-z-]+)", README))
        assert options, f"no options of edgevit {sub} found in the README prose"
        for opt in options:
            assert opt in help_text, f"README names `edgevit {sub} {opt}`, which --help lacks"


@pytest.mark.slow
def test_python_api_example_runs(tmp_path):
    """The Python block runs as it stands and its export meets the int8 agreement target against PyTorch."""
    (block,) = _code_blocks("python")
    script = tmp_path / "example.py"
    script.write_text(block + "\nimport json; print(json.dumps(report['artifacts']['int8']))\n")
    proc = subprocess.run([sys.executable, str(script)], cwd=tmp_path, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]
    fidelity = json.loads(proc.stdout.strip().splitlines()[-1])
    assert fidelity["agreement"] >= 0.99 and fidelity["cosine"] >= 0.99, fidelity
    assert (tmp_path / "artifacts" / "api_demo" / "int8" / "model.tflite").is_file()


@pytest.mark.skipif(not (ROOT / ".models" / "mediapipe" / "face_landmark.tflite").is_file(),
                    reason="no MediaPipe models: run `make mediapipe-models` (make test does)")
def test_readme_pipeline_example_finds_the_face(tmp_path):
    """The README's pipeline file is a working face pipeline: it loads, and on the portrait camera its
    landmark stage finds one face."""
    import numpy as np

    from device_sim.pipelines import load_pipeline
    from device_sim.sources.base import SourceSpec
    from device_sim.sources.photo import PhotoCamera
    from device_sim.stages import UNTIMED, Pipeline, Stage, load_stage_models

    (block,) = re.findall(r"```toml\n(.*?)```", README, flags=re.S)
    path = tmp_path / "readme.toml"
    path.write_text(block)
    spec = load_pipeline(path)
    pipe = Pipeline(spec, [Stage(s, m, UNTIMED) for s, m in zip(spec.stages, load_stage_models(spec))])
    cam = PhotoCamera(SourceSpec(arg="", width=640, height=480, fps=30, samples=None, labels=[]))
    found = [len(pipe.view.found["landmarks"]) for _ in range(5) if pipe.process(cam.read()[0]).valid]
    assert found == [1] * 5 and np.isfinite(pipe.view.found["landmarks"][0].points).all()
