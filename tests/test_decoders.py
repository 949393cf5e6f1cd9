"""Decoders against hand-computed expectations on synthetic outputs (anchors, decoding, NMS), and the
SSD decoder on MediaPipe's real face detector looking at a portrait (skipped without its models)."""

from __future__ import annotations

import numpy as np
import pytest

from device_sim.decode.ssd import AnchorSpec, DecodeSpec, Detections, decode, iou, ssd_anchors, weighted_nms
from device_sim.sources.photo import models_dir

FACE_SHORT = AnchorSpec(input_width=128, input_height=128, strides=(8, 16, 16, 16))   # MediaPipe's face detector


def test_face_detector_anchor_grid():
    a = ssd_anchors(FACE_SHORT)
    # stride 8: a 16x16 map, 2 anchors per cell (aspect 1 + interpolated); the three stride-16 layers share
    # an 8x8 map with 2 anchors each per layer: 16*16*2 + 8*8*6 = 896
    assert a.shape == (896, 4)
    assert np.allclose(a[0], [0.5 / 16, 0.5 / 16, 1, 1]) and np.allclose(a[1], a[0])
    assert np.allclose(a[2], [1.5 / 16, 0.5 / 16, 1, 1])                 # next cell to the right
    assert np.allclose(a[511], [15.5 / 16, 15.5 / 16, 1, 1])             # last cell of the first map
    assert np.allclose(a[512:518, :2], [0.5 / 8, 0.5 / 8]) and np.allclose(a[-1], [7.5 / 8, 7.5 / 8, 1, 1])


def test_anchor_sizes_follow_scale_and_aspect_when_not_fixed():
    spec = AnchorSpec(input_width=64, input_height=32, strides=(32, 64), min_scale=0.2, max_scale=0.6,
                      aspect_ratios=(1.0, 4.0), interpolated_scale_aspect_ratio=0.0, fixed_anchor_size=False)
    a = ssd_anchors(spec)
    assert a.shape == (1 * 2 * 2 + 1 * 1 * 2, 4)          # stride 32: 1x2 map, stride 64: 1x1 map; 2 ratios
    assert np.allclose(a[0], [0.25, 0.5, 0.2, 0.2])       # scale 0.2, aspect 1
    assert np.allclose(a[1], [0.25, 0.5, 0.4, 0.1])       # aspect 4: w = s*2, h = s/2
    assert np.allclose(a[4], [0.5, 0.5, 0.6, 0.6])        # second layer: max_scale


def test_decode_by_hand():
    anchors = np.array([[0.5, 0.5, 1, 1], [0.25, 0.25, 1, 1]], np.float32)
    raw = np.zeros((2, 8), np.float32)
    raw[0] = [12.8, -6.4, 32, 64, 0, 0, 6.4, 6.4]       # box shifted by +0.1, -0.05; 0.25 x 0.5; 2 keypoints
    scores = np.array([2.0, -3.0])                        # sigmoid: 0.881 kept, 0.047 dropped
    det = decode(raw, scores, anchors, DecodeSpec(scale=128, num_keypoints=2))
    assert len(det) == 1 and det.scores[0] == pytest.approx(1 / (1 + np.exp(-2.0)))
    assert np.allclose(det.boxes[0], [0.6 - 0.125, 0.45 - 0.25, 0.6 + 0.125, 0.45 + 0.25])
    assert np.allclose(det.keypoints[0], [[0.5, 0.5], [0.55, 0.55]])
    clipped = decode(raw, np.array([1e9, -1e9]), anchors, DecodeSpec(scale=128, min_score=0.0))
    assert np.isfinite(clipped.scores).all() and clipped.scores[1] > 0   # clipped at +-100, not overflowed


def test_iou_by_hand():
    box = np.array([0, 0, 2, 2], np.float32)
    others = np.array([[1, 1, 3, 3], [2, 2, 3, 3], [0, 0, 2, 2]], np.float32)
    assert np.allclose(iou(box, others), [1 / 7, 0.0, 1.0])


def test_weighted_nms_merges_overlaps_and_keeps_the_rest():
    boxes = np.array([[0.0, 0.0, 0.4, 0.4], [0.1, 0.0, 0.5, 0.4], [0.6, 0.6, 0.9, 0.9]], np.float32)
    kps = np.array([[[0.2, 0.2]], [[0.4, 0.2]], [[0.7, 0.7]]], np.float32)
    det = Detections(boxes, kps, np.array([0.9, 0.6, 0.8], np.float32))
    out = weighted_nms(det, 0.3)                        # boxes 0 and 1 overlap by IoU 0.6; box 2 is alone
    assert out.scores.tolist() == pytest.approx([0.9, 0.8])
    assert np.allclose(out.boxes[0], (0.9 * boxes[0] + 0.6 * boxes[1]) / 1.5)   # score-weighted mean
    assert np.allclose(out.keypoints[0], [[(0.9 * 0.2 + 0.6 * 0.4) / 1.5, 0.2]])
    assert np.allclose(out.boxes[1], boxes[2])
    assert len(weighted_nms(det, 0.7)) == 3                 # a stricter threshold merges nothing
    assert len(weighted_nms(det, 0.3, max_detections=1)) == 1


FACE_MODEL = models_dir() / "mediapipe" / "face_detection_short_range.tflite"


@pytest.mark.skipif(not FACE_MODEL.is_file(),
                    reason="no MediaPipe models: run `make mediapipe-models` (make test does)")
def test_mediapipe_face_detector_finds_the_astronauts_face():
    """The decoder on the real model: one face, inside the photo's face region, its eye keypoints level."""
    import cv2

    from contract.runtime import interpreter_class

    photo = cv2.cvtColor(cv2.imread(str(models_dir() / "astronaut.png")), cv2.COLOR_BGR2RGB)   # 512x512
    interp = interpreter_class()(model_path=str(FACE_MODEL))
    interp.allocate_tensors()
    x = cv2.resize(photo, (128, 128), interpolation=cv2.INTER_AREA).astype(np.float32) / 127.5 - 1.0
    interp.set_tensor(interp.get_input_details()[0]["index"], x[None])
    interp.invoke()
    outs = {tuple(d["shape"]): interp.get_tensor(d["index"]) for d in interp.get_output_details()}
    det = weighted_nms(decode(outs[(1, 896, 16)][0], outs[(1, 896, 1)][0], ssd_anchors(FACE_SHORT),
                              DecodeSpec(scale=128, num_keypoints=6)), 0.3)
    assert len(det) == 1 and det.scores[0] > 0.7
    xmin, ymin, xmax, ymax = det.boxes[0] * 512
    # the astronaut's face lies around x 170-260, y 70-190 of the 512x512 photo (checked by eye once)
    assert 120 < (xmin + xmax) / 2 < 300 and 40 < (ymin + ymax) / 2 < 220 and 50 < xmax - xmin < 200
    right_eye, left_eye = det.keypoints[0][0] * 512, det.keypoints[0][1] * 512
    assert abs(right_eye[1] - left_eye[1]) < 20 and right_eye[0] < left_eye[0]


# -- geometry: model outputs back into the camera frame ---------------------------------------------
def test_model_input_points_map_through_the_centre_square():
    from device_sim.decode.geometry import from_model_input

    # a 640x480 frame: the model sees the 480x480 square starting at x 80
    assert np.allclose(from_model_input(np.array([[0, 0], [0.5, 0.5], [1, 1]]), 640, 480),
                       [[80, 0], [320, 240], [560, 480]])


def test_roi_from_a_level_and_a_tilted_detection():
    from device_sim.decode.geometry import roi_from_detection, roi_to_frame

    box = np.array([0.25, 0.25, 0.5, 0.75])                 # in a 480x480 frame: x 120-240, y 120-360
    level = roi_from_detection(box, np.array([[0.3, 0.4], [0.45, 0.4]]), 480, 480, scale=1.5)
    assert (level.x, level.y, level.width, level.rotation) == pytest.approx((180, 240, 360, 0))
    assert np.allclose(roi_to_frame(np.array([[0, 0], [1, 1]]), level), [[0, 60], [360, 420]])
    # the line between the keypoints rises 45 degrees to the right: the ROI turns 45 degrees anticlockwise
    tilted = roi_from_detection(box, np.array([[0.3, 0.5], [0.4, 0.4]]), 480, 480, scale=1.0)
    assert tilted.rotation == pytest.approx(-np.pi / 4)
    right_mid = roi_to_frame(np.array([[1.0, 0.5]]), tilted)[0]      # the crop's right edge, middle
    assert right_mid == pytest.approx([180 + 120 * np.cos(np.pi / 4), 240 - 120 * np.sin(np.pi / 4)], abs=1e-3)
    shifted = roi_from_detection(box, np.array([[0.3, 0.4], [0.45, 0.4]]), 480, 480, scale=1.0, shift_y=-0.1)
    assert (shifted.x, shifted.y) == pytest.approx((180, 240 - 24))   # up by 10% of the box's 240 px height
    wide = roi_from_detection(box, np.array([[0.3, 0.4], [0.45, 0.4]]), 480, 480, scale=2.6, shift_y=-0.1)
    assert (wide.y, wide.width) == pytest.approx((240 - 24, 624))       # shifted by the box, not the scaled side


def test_crop_matrix_round_trips_with_roi_to_frame():
    import cv2

    from device_sim.decode.geometry import Roi, crop_matrix, roi_to_frame

    roi = Roi(300.0, 200.0, 160.0, 120.0, 0.3)
    m = crop_matrix(roi, 64, 48)
    pts = np.array([[0.1, 0.2], [0.5, 0.5], [0.9, 0.7]], np.float32)
    in_frame = roi_to_frame(pts, roi)
    back = cv2.transform(in_frame[None], m)[0] / np.array([64, 48])
    assert np.allclose(back, pts, atol=1e-4)


def test_mask_lands_on_the_centre_square():
    from device_sim.decode.geometry import mask_to_frame

    mask = np.zeros((4, 4), np.float32)
    mask[:, :2] = 1.0                                        # the left half of what the model saw
    out = mask_to_frame(mask, 640, 480)
    assert out.shape == (480, 640) and out[:, :80].max() == 0 and out[:, 560:].max() == 0   # outside the square
    assert out[240, 100] == 1.0 and out[240, 540] == 0.0 and abs(out[:, 80:560].mean() - 0.5) < 0.05


def _stage(task: str, outputs: list[dict], **sections):
    """A pipeline Stage over a stand-in model (what Stage reads: input size, output specs)."""
    from pathlib import Path
    from types import SimpleNamespace

    from device_sim.pipelines import StageSpec
    from device_sim.stages import UNTIMED, Stage
    from device_sim.tasks import task_named

    model = SimpleNamespace(width=192, height=192, output_specs=outputs)
    return Stage(StageSpec(name="s", model=Path("m.tflite"), task=task_named(task), sections=sections), model, UNTIMED)


def test_landmarks_scale_back_onto_the_frame_by_hand():
    """Points in crop pixels (int8 output, scale 2, zero point -10) and a presence logit -> frame pixels
    through a rotated crop: the crop's centre lands on the ROI's centre, its right edge half a side to the
    ROI's x axis."""
    from device_sim.decode.geometry import Roi, roi_to_frame

    q8 = {"dtype": "int8", "quantization": {"scale": 2.0, "zero_point": -10}, "shape": [1, 6]}
    stage = _stage("landmarks", [q8, {"dtype": "float32", "quantization": None, "shape": [1, 1]}],
                   landmarks={"count": 2, "dims": 3, "scale": 192.0, "presence_output": 1, "presence_sigmoid": True})
    crop_px = np.array([[96, 96, 0], [192, 96, 0]], np.float32)        # the crop's centre and its right edge
    raw = [(crop_px / 2.0 - 10).astype(np.int8).reshape(1, 6), np.array([[2.0]], np.float32)]
    points, presence = stage.decode(raw)
    assert np.allclose(points, [[0.5, 0.5], [1.0, 0.5]]) and presence == pytest.approx(1 / (1 + np.exp(-2.0)))
    roi = Roi(300.0, 200.0, 100.0, 100.0, np.pi / 2)                  # turned a quarter clockwise
    assert np.allclose(roi_to_frame(points, roi), [[300, 200], [300, 250]], atol=1e-4)


def test_detection_stage_decodes_and_suppresses_by_hand():
    """Two anchors' raw outputs for the same face merge into one detection (weighted NMS); a detector whose
    outputs do not match its anchors is refused with the counts."""
    from contract.errors import UserError

    f32 = {"dtype": "float32", "quantization": None}
    anchors = {"strides": [96], "offset": 0.5, "interpolated_scale_aspect_ratio": 0.0}   # a 2x2 map, 4 anchors
    stage = _stage("detection", [{**f32, "shape": [1, 4, 4]}, {**f32, "shape": [1, 4, 1]}], anchors=anchors,
                   decode={"scale": 192.0, "nms_iou": 0.3})
    assert np.allclose(stage.decode.anchors[:, :2], [[0.25, 0.25], [0.75, 0.25], [0.25, 0.75], [0.75, 0.75]])
    boxes = np.zeros((1, 4, 4), np.float32)
    boxes[0, 0] = [96 * 0.5, 96 * 0.5, 96, 96]      # anchor 0 + (0.25, 0.25): centre (0.5, 0.5), 0.5 x 0.5
    boxes[0, 3] = [-96 * 0.5, -96 * 0.5, 96, 96]    # anchor 3 - (0.25, 0.25): the same box
    scores = np.array([[[3.0], [-5.0], [-5.0], [1.0]]], np.float32)
    det = stage.decode([boxes, scores])
    assert len(det) == 1 and det.scores[0] == pytest.approx(1 / (1 + np.exp(-3.0)))
    assert np.allclose(det.boxes[0], [0.25, 0.25, 0.75, 0.75], atol=1e-6)
    with pytest.raises(UserError, match="the anchors give 4 boxes"):
        _stage("detection", [{**f32, "shape": [1, 9, 4]}, {**f32, "shape": [1, 9, 1]}], anchors=anchors, decode={})
