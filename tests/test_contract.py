"""contract: the model card, quantization, the resize policy and the file helpers, unit by unit."""

from __future__ import annotations

import errno
import json

import numpy as np
import pytest

from contract.card import SCHEMA, read_card, validate_card
from contract.errors import BUG_NOTE, EXIT_BUG, UserError, run_command
from contract.files import atomic_write, check_writable, to_json, write_json
from contract.images import resize_to_model
from contract.quant import dequantize_output, quantize_input


def test_quantize_and_dequantize_by_hand():
    spec = {"dtype": "int8", "quantization": {"scale": 2.0, "zero_point": -128}}
    x = np.array([[0, 1, 2, 3, 255]], np.uint8)
    # q = round(x / 2) - 128, clipped to int8; np.round rounds half to even (1 / 2 -> 0, 3 / 2 -> 2)
    assert quantize_input(x, spec).tolist() == [[-128, -128, -127, -126, 0]]
    assert dequantize_output(np.array([-128, 0, 127], np.int8), spec).tolist() == [0.0, 256.0, 510.0]
    raw = {"dtype": "uint8", "quantization": {"scale": 1.0, "zero_point": 0}}
    assert quantize_input(x, raw) is x                               # raw pixels pass through, no copy
    f32 = quantize_input(x, {"dtype": "float32", "quantization": None})
    assert f32.dtype == np.float32 and f32.tolist() == [[0, 1, 2, 3, 255]]


def test_input_values_for_models_that_do_not_take_raw_pixels():
    x = np.array([[0, 51, 255]], np.uint8)
    minus_one_one = quantize_input(x, {"dtype": "float32", "quantization": None, "value_range": [-1, 1]})
    assert minus_one_one.dtype == np.float32 and np.allclose(minus_one_one, [[-1.0, -0.6, 1.0]])
    timm = {"dtype": "float32", "quantization": None,
            "normalization": {"folded": False, "mean": [0.5, 0.25, 0.0], "std": [0.5, 0.25, 1.0]}}
    px = np.array([[[[255, 255, 51]]]], np.uint8)                       # one RGB pixel
    assert np.allclose(quantize_input(px, timm), [[[[1.0, 3.0, 0.2]]]])  # (x/255 - mean) / std per channel
    # an int8 model that takes 0..1: values first, then its quantization (scale 1/255, zero point -128)
    q = {"dtype": "int8", "quantization": {"scale": 1 / 255, "zero_point": -128}, "value_range": [0, 1]}
    assert quantize_input(x, q).tolist() == [[-128, -77, 127]]
    folded = {"dtype": "uint8", "quantization": {"scale": 1.0, "zero_point": 0}, "value_range": [0, 255],
              "normalization": {"folded": True, "mean": [0.5] * 3, "std": [0.2] * 3}}
    assert quantize_input(x, folded) is x                               # an export's card: pixels as they are


def test_resize_policy_crops_the_center_square():
    frame = np.zeros((40, 80, 3), np.uint8)
    frame[:, 20:60] = 200                                 # the center square is bright, the bars dark
    out = resize_to_model(frame, 20)
    assert out.shape == (20, 20, 3) and (out == 200).all()
    same = np.arange(64 * 64 * 3, dtype=np.uint8).reshape(64, 64, 3)
    assert np.array_equal(resize_to_model(same, 64), same)
    with pytest.raises(ValueError, match="crop"):
        resize_to_model(frame, 20, policy={"crop": "letterbox"})


def test_letterbox_keeps_the_whole_frame_and_maps_back():
    """MediaPipe's detector input: a 640x480 frame fitted into 128x128, black bands above and below, and a
    normalized model point back at the frame pixel it came from."""
    from contract.images import check_resize_policy, frame_to_model_matrix, model_region, resize_preset, to_frame

    frame = np.full((480, 640, 3), 200, np.uint8)
    out = resize_to_model(frame, 128, 128, resize_preset("letterbox"))
    assert (out[:16] == 0).all() and (out[112:] == 0).all() and (out[17:111] == 200).all()
    policy = check_resize_policy({"policy": "letterbox"})
    region = model_region(policy, 640, 480, 128, 128)
    assert region == (0.0, -80.0, 640.0, 640.0)
    m = frame_to_model_matrix(policy, region, 128, 128)
    pt = np.array([[600.0, 40.0]])                        # in the outer band a centre crop never sees
    in_model = (m[:, :2] @ pt.T).T + m[:, 2]
    assert np.allclose(to_frame(in_model / 128, region), pt, atol=1e-4)
    assert np.allclose(to_frame([[0, 0], [1, 1]], model_region(resize_preset("stretch"), 640, 480, 256, 256)),
                       [[0, 0], [640, 480]])


def test_cards_without_a_policy_keep_the_centre_crop():
    from contract.images import RESIZE_POLICY, check_resize_policy

    old = {"crop": "center_square", "interpolation_down": "area", "interpolation_up": "linear"}
    assert check_resize_policy(old) == check_resize_policy(None) == RESIZE_POLICY
    assert check_resize_policy({"crop": "none"})["policy"] == "stretch"
    frame = np.random.default_rng(0).integers(0, 256, (48, 80, 3), dtype=np.uint8)
    import cv2

    expected = cv2.resize(frame[:, 16:64], (20, 20), interpolation=cv2.INTER_AREA)
    assert np.array_equal(resize_to_model(frame, 20, policy=old), expected)
    assert np.array_equal(resize_to_model(frame, 20), expected)


def test_a_crop_stage_reads_the_policy_of_its_model():
    """Crops are warped: a card that names no policy keeps edgevit's crop (linear, corner, zeros outside), a
    named one is used with area read as linear, a border given alone starts from the crop default."""
    from contract.images import CROP_POLICY, RESIZE_POLICY, check_resize_policy

    old = {"crop": "center_square", "interpolation_down": "area", "interpolation_up": "linear"}
    assert check_resize_policy(old, crop=True) == check_resize_policy(None, crop=True) == CROP_POLICY
    named = check_resize_policy(RESIZE_POLICY, crop=True)
    assert named["policy"] == "center_crop" and named["interpolation_down"] == "linear"
    assert check_resize_policy({"border": "replicate"}, crop=True) == {**CROP_POLICY, "border": "replicate"}


@pytest.mark.parametrize("resize, fragment", [
    ({"policy": "fit"}, "input.resize.policy 'fit' is not one of center_crop, letterbox, stretch"),
    ({"border": "wrap"}, "input.resize.border 'wrap' is not one of constant, replicate"),
    ({"pad_value": 300}, "input.resize.pad_value 300 is not a pixel value 0..255"),
    ({"crop": "none", "policy": "letterbox"}, "contradicts input.resize.policy 'letterbox'"),
    ({"sampling": "x"}, "input.resize.sampling is not a field"),
])
def test_a_bad_resize_in_a_card_is_one_line_naming_file_and_field(tmp_path, resize, fragment):
    card = _card()
    card["input"]["resize"] = resize
    with pytest.raises(UserError) as e:
        validate_card(card, tmp_path / "model.json")
    message = str(e.value)
    assert "\n" not in message and str(tmp_path / "model.json") in message and fragment in message, message


def _card():
    return {"schema": SCHEMA, "file": "model.tflite", "sha256": "0" * 64, "labels": ["a", "b"],
            "input": {"shape": [1, 8, 8, 3], "dtype": "uint8", "layout": "NHWC", "color": "RGB",
                      "quantization": {"scale": 1.0, "zero_point": 0}},
            "output": {"shape": [1, 2], "dtype": "uint8", "quantization": None}}


@pytest.mark.parametrize("edit,fragment", [
    (lambda c: c.pop("labels"), "'labels'"),
    (lambda c: c.update(schema="other/9"), "other/9"),
    (lambda c: c["input"].update(shape=[1, 3, 8, 8]), "input.shape"),
    (lambda c: c["input"].update(dtype="int4"), "input.dtype"),
    (lambda c: c["input"].update(color="YUV"), "input.color"),
    (lambda c: c["input"].update(resize={"crop": "stretch"}), "crop"),
    (lambda c: c["input"].update(quantization={"scale": 0, "zero_point": 0}), "input.quantization"),
    (lambda c: c.update(labels=[]), "labels is empty"),
    (lambda c: c.update(task="segment-anything"), "task 'segment-anything'"),
    (lambda c: c["input"].update(value_range=[1, 0]), "input.value_range"),
    (lambda c: c["input"].update(normalization={"folded": False, "mean": [0.5, 0.5], "std": [1, 1, 1]}),
     "normalization.mean"),
    (lambda c: c["input"].update(normalization={"folded": False, "mean": [0.5] * 3, "std": [1, 0, 1]}),
     "normalization.std must be > 0"),
    (lambda c: c.update(outputs=[]), "outputs must be a non-empty list"),
])
def test_card_validation_names_the_field(tmp_path, edit, fragment):
    card = _card()
    validate_card(card, tmp_path / "model.json")
    edit(card)
    with pytest.raises(UserError, match=fragment.replace("(", r"\(").replace(")", r"\)")):
        validate_card(card, tmp_path / "model.json")


def test_read_card_errors(tmp_path):
    with pytest.raises(UserError, match="model.json not found"):
        read_card(tmp_path)
    (tmp_path / "model.json").write_text("{not json")
    with pytest.raises(UserError, match="not valid JSON"):
        read_card(tmp_path)
    (tmp_path / "model.json").write_text(json.dumps(_card()))
    assert read_card(tmp_path / "model.tflite")[0]["labels"] == ["a", "b"]


def test_json_is_always_json(tmp_path):
    with pytest.raises(ValueError, match=r"\$.budgets\[0\].limit"):
        to_json({"budgets": [{"limit": float("inf")}]})
    write_json(tmp_path / "r.json", {"x": np.float32(1.5), "n": np.int64(3), "a": np.arange(2)})
    assert json.loads((tmp_path / "r.json").read_text()) == {"x": 1.5, "n": 3, "a": [0, 1]}


def test_atomic_write_keeps_the_old_file_on_failure(tmp_path):
    path = tmp_path / "f.txt"
    path.write_text("old")

    def broken(tmp):
        tmp.write_text("half")
        raise RuntimeError("disk full")

    with pytest.raises(RuntimeError):
        atomic_write(path, broken)
    assert path.read_text() == "old" and [p.name for p in tmp_path.iterdir()] == ["f.txt"]


def test_atomic_write_gives_the_mode_a_new_file_would_have(tmp_path):
    """mkstemp's temp file is 0600; an output renamed from it was unreadable to the user's group."""
    import os

    saved = os.umask(0o027)
    try:
        atomic_write(tmp_path / "f.txt", lambda tmp: tmp.write_text("x"))
        (tmp_path / "g.txt").write_text("x")
    finally:
        os.umask(saved)
    assert (tmp_path / "f.txt").stat().st_mode & 0o777 == (tmp_path / "g.txt").stat().st_mode & 0o777 == 0o640


def test_check_writable_creates_nothing(tmp_path):
    check_writable(tmp_path / "a" / "b")
    assert not (tmp_path / "a").exists()
    (tmp_path / "file").write_text("x")
    with pytest.raises(UserError, match="not a folder"):
        check_writable(tmp_path / "file")
    with pytest.raises(UserError, match="cannot write"):
        check_writable(tmp_path / "file" / "sub")


def test_run_command_turns_errors_into_exit_codes(capsys):
    def user_mistake():
        raise UserError("bad --thing; use --other")

    assert run_command(user_mistake, prog="edgevit x") == 2
    assert capsys.readouterr().err.strip() == "edgevit x: error: bad --thing; use --other"
    assert run_command(lambda: 3, prog="edgevit x") == 3

    def interrupted():
        raise KeyboardInterrupt

    assert run_command(interrupted, prog="edgevit x") == 130


def test_run_command_tells_a_bug_from_a_user_mistake(capsys):
    """Only UserError and the OS errors a user fixes are one line and exit 2; anything else is a bug: its
    traceback, the note to report it, exit 1 (a plain ValueError included: it is not the user's)."""
    def raises(e):
        def fn():
            raise e
        return fn

    for bug in (ValueError("could not broadcast"), KeyError("logits"), RuntimeError("boom"),
                OSError(errno.EPIPE, "Broken pipe"), PermissionError(errno.EPERM, "Operation not permitted")):
        assert run_command(raises(bug), prog="edgevit x") == EXIT_BUG, bug
        err = capsys.readouterr().err
        assert "Traceback" in err and err.strip().endswith(f"edgevit x: {BUG_NOTE}"), err
    for mistake, fragment in ((FileNotFoundError(errno.ENOENT, "No such file or directory", "/a/b.pt"), "/a/b.pt"),
                              (IsADirectoryError(errno.EISDIR, "Is a directory", "/a"), "a folder stands"),
                              (OSError(errno.ENOSPC, "No space left on device", "/full/x.pt"), "free some space"),
                              (OSError(errno.ENOSPC, "No space left on device"), "No space left")):
        assert run_command(raises(mistake), prog="edgevit x") == 2, mistake
        err = capsys.readouterr().err
        assert "Traceback" not in err and len(err.strip().splitlines()) == 1 and fragment in err, err


def test_a_full_disk_is_one_line_naming_the_file(tmp_path, capsys):
    """A write that fails for want of space (ENOSPC, here from /dev/full) names the file it was writing,
    and the runner makes it one line, exit 2."""
    target = tmp_path / "best.pt"

    def fill(tmp):
        with open("/dev/full", "wb") as f:
            f.write(b"\0" * 65536)
            f.flush()

    assert run_command(lambda: atomic_write(target, fill), prog="edgevit train") == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and str(target) in err and "free some space" in err, err
    assert list(tmp_path.iterdir()) == [], "the temp file is removed"
