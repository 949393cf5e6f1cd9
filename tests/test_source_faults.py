"""Fault injection, source by source: open fails, read fails mid-stream, a corrupt frame, end of
stream. Each ends as the README documents: open failure -> UserError (exit 2, nothing written);
failure mid-stream or too many corrupt frames in a row -> exit 4 with a valid partial report; a
corrupt frame -> skipped and counted; end of stream -> exit 0."""

from __future__ import annotations

import json

import cv2
import numpy as np
import pytest

from contract.errors import EXIT_OK, EXIT_SOURCE_FAILED, UserError
from device_sim.profiles import load_profile
from device_sim.simulate import simulate
from device_sim.sources import SourceFailed
from device_sim.sources import video as video_mod
from device_sim.sources.synthetic import SyntheticCamera

W, H = 160, 120


@pytest.fixture
def profile(tmp_path):
    path = tmp_path / "p.toml"
    path.write_text(f'name = "faults"\n[camera]\nwidth = {W}\nheight = {H}\nfps = 30\n'
                    '[device]\ncore = "host"\nthreads = 1\n'
                    "[budgets]\nlatency_ms = 1000\nmemory_mb = 4000\nmodel_size_mb = 100\n")
    return load_profile(path)


def _run(tiny_export, profile, out, source, **kw):
    kw.setdefault("duration_s", None)
    return simulate(tiny_export / "int8", profile, out=out, source=source, max_speed=True, video=False, plots=False,
                    progress=False, log=lambda *a: None, **kw)


def _check_report(out, code, report):
    saved = json.loads((out / "report.json").read_text())
    assert saved["partial"] is (code == EXIT_SOURCE_FAILED) and saved["frames"] == report["frames"]
    assert len((out / "frames.csv").read_text().strip().splitlines()) == 1 + report["frames"]["processed"]


class FakeCapture:
    """cv2.VideoCapture stand-in: `script` lists what each read() returns; None = a failed read."""

    def __init__(self, script, total=None):
        self.script, self.total, self.pos = script, total, 0

    def isOpened(self):
        return True

    def read(self):
        item = self.script[self.pos] if self.pos < len(self.script) else None
        self.pos += 1
        return (False, None) if item is None else (True, item)

    def set(self, prop, value):
        if prop == cv2.CAP_PROP_POS_FRAMES:
            self.pos = int(value)

    def get(self, prop):
        return float(self.total or 0) if prop == cv2.CAP_PROP_FRAME_COUNT else 0.0

    def release(self):
        pass


def _frame(i):
    return np.full((H, W, 3), 20 * i % 256, np.uint8)


# -- synthetic ----------------------------------------------------------------------------------
def test_synthetic_faults(tiny_export, tmp_path, profile, monkeypatch):
    with pytest.raises(UserError, match="sample pack"):
        _run(tiny_export, profile, tmp_path / "o0", "synthetic", samples=tmp_path / "none.npz", max_frames=5)
    assert not (tmp_path / "o0").exists()
    render = SyntheticCamera._render

    def corrupt_third(self, i):
        return (np.zeros((H, W), np.uint8), 0) if i == 3 else render(self, i)   # a gray frame: malformed

    monkeypatch.setattr(SyntheticCamera, "_render", corrupt_third)
    code, report = _run(tiny_export, profile, tmp_path / "o1", "synthetic", max_frames=10)
    assert code == EXIT_OK and report["bad_frames"]["count"] == 1 and report["frames"]["processed"] == 10
    _check_report(tmp_path / "o1", code, report)

    def fail_at_six(self, i):
        if i == 6:
            raise SourceFailed("sensor stopped")
        return render(self, i)

    monkeypatch.setattr(SyntheticCamera, "_render", fail_at_six)
    code, report = _run(tiny_export, profile, tmp_path / "o2", "synthetic", max_frames=50)
    assert code == EXIT_SOURCE_FAILED and report["frames"]["processed"] == 6
    assert "sensor stopped" in report["stop_reason"]
    _check_report(tmp_path / "o2", code, report)


# -- video file and camera (through OpenCV's capture) ----------------------------------------------
@pytest.mark.parametrize("kind", ["video", "camera"])
def test_capture_faults(tiny_export, tmp_path, profile, monkeypatch, kind):
    clip = tmp_path / "clip.mp4"
    clip.write_bytes(b"stand-in; the capture is faked")
    spec = f"video:{clip}" if kind == "video" else "camera:0"

    def with_capture(script, total=None):
        monkeypatch.setattr(video_mod.cv2, "VideoCapture", lambda *a: FakeCapture(list(script), total))

    with_capture([], 0)                 # opens, but the first read fails: not a usable stream
    if kind == "video":
        with pytest.raises(UserError, match="not a video"):
            _run(tiny_export, profile, tmp_path / "o0", spec, max_frames=5)
    # a corrupt (gray, wrongly shaped) frame among good ones, then the end of the stream
    frames = [_frame(i) for i in range(8)]
    frames[4] = np.zeros((H, W), np.uint8)
    with_capture(frames, total=8)
    code, report = _run(tiny_export, profile, tmp_path / "o1", spec, max_frames=None if kind == "video" else 7)
    assert code == EXIT_OK and report["bad_frames"]["count"] == 1 and report["frames"]["processed"] == 7
    _check_report(tmp_path / "o1", code, report)
    # the stream dies after 5 frames (a file that claims 20, or a camera that is unplugged)
    with_capture([_frame(i) for i in range(5)], total=20)
    code, report = _run(tiny_export, profile, tmp_path / "o2", spec, max_frames=50)
    assert code == EXIT_SOURCE_FAILED and report["frames"]["processed"] == 5 and report["partial"]
    _check_report(tmp_path / "o2", code, report)


def test_camera_that_does_not_open(tiny_export, tmp_path, profile):
    with pytest.raises(UserError, match="camera index 57 does not open"):
        _run(tiny_export, profile, tmp_path / "o", "camera:57", max_frames=5)


# -- image folder -----------------------------------------------------------------------------------
def test_folder_faults(tiny_export, tmp_path, profile):
    root = tmp_path / "imgs"
    root.mkdir()
    with pytest.raises(UserError, match="holds no images"):
        _run(tiny_export, profile, tmp_path / "o0", f"folder:{root}")
    for i in range(9):
        cv2.imwrite(str(root / f"{i:02d}.png"), _frame(i))
    (root / "04.png").write_bytes(b"not a png")                      # one corrupt image: skipped
    (root / "album.png").mkdir()                                      # a folder named like an image: a folder
    cv2.imwrite(str(root / "album.png" / "inner.png"), _frame(9))     # ... whose image is a frame
    code, report = _run(tiny_export, profile, tmp_path / "o1", f"folder:{root}")
    assert code == EXIT_OK and report["frames"]["processed"] == 9 and report["bad_frames"]["count"] == 1
    assert "04.png" in report["bad_frames"]["examples"][0] and "source ended" in report["stop_reason"]
    _check_report(tmp_path / "o1", code, report)
    for i in (5, 6, 7):                                               # then four in a row: the run ends
        (root / f"{i:02d}.png").write_bytes(b"broken")
    code, report = _run(tiny_export, profile, tmp_path / "o2", f"folder:{root}", max_bad_frames=2)
    assert code == EXIT_SOURCE_FAILED and report["frames"]["processed"] == 4
    assert "2 corrupt frames in a row" in report["stop_reason"]   # N in a row end it (3 did, with N = 2)
    _check_report(tmp_path / "o2", code, report)
    code, report = _run(tiny_export, profile, tmp_path / "o3", f"folder:{root}", max_bad_frames=4)
    assert code == EXIT_SOURCE_FAILED and "4 corrupt frames in a row" in report["stop_reason"]
