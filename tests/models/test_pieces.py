from __future__ import annotations

import numpy as np
import pytest

from pe_models.metrics import boxes_by_size, clot_pieces_by_size


def square(mask: np.ndarray, y: int, x: int, side: int) -> None:
    mask[y : y + side, x : x + side] = 1


def test_pieces_are_counted_by_size_and_found_by_any_predicted_pixel() -> None:
    truth = np.zeros((64, 64), np.uint8)
    square(truth, 2, 2, 2)  # 4 mm² at 1 mm pixels: the smallest class
    square(truth, 10, 10, 3)  # 9 mm²
    square(truth, 20, 20, 6)  # 36 mm²
    square(truth, 40, 40, 10)  # 100 mm²
    square(truth, 2, 40, 14)  # 196 mm²
    pred = np.zeros_like(truth)
    pred[10, 10] = 1  # one pixel of the 9 mm² piece: found
    square(pred, 40, 40, 10)  # the whole 100 mm² piece
    pred[30:34, 2:6] = 1  # a false piece changes no count
    result = clot_pieces_by_size([pred], [truth], [1.0])
    assert list(result["pieces"].values()) == [1, 1, 1, 1, 1]
    assert list(result["found"].values()) == [0, 1, 0, 1, 0]
    assert list(result["piece_recall"].values()) == [0.0, 1.0, 0.0, 1.0, 0.0]
    assert result["pixel_recall"]["5-15 mm²"] == pytest.approx(1 / 9)
    assert result["pieces_out_of_view"] == 0


def test_sizes_are_in_mm2_and_pieces_outside_the_view_are_counted_apart() -> None:
    truth = np.zeros((32, 32), np.uint8)
    square(truth, 0, 0, 4)  # 16 px; at 0.25 mm² each, 4 mm²
    square(truth, 20, 20, 4)  # outside the view below
    pred = np.zeros_like(truth)
    result = clot_pieces_by_size([pred], [truth], [0.25], views=[(0, 16, 0, 16)])
    assert result["pieces"]["0-5 mm²"] == 1  # only the piece in view
    assert sum(result["pieces"].values()) == 1
    assert result["pieces_out_of_view"] == 1
    assert result["pixels_out_of_view_share"] == 0.5


def test_slices_without_clot_and_mismatched_inputs() -> None:
    empty = np.zeros((8, 8), np.uint8)
    result = clot_pieces_by_size([empty], [empty], [1.0])
    assert set(result["piece_recall"].values()) == {None}
    assert result["pixels_out_of_view_share"] is None
    with pytest.raises(ValueError, match="differ"):
        clot_pieces_by_size([np.zeros((4, 4))], [empty], [1.0])
    with pytest.raises(ValueError, match="pixel_areas_mm2"):
        clot_pieces_by_size([empty], [empty], [])


def test_box_ap_is_split_by_true_box_size_and_other_sizes_are_ignored() -> None:
    large = [10.0, 10.0, 30.0, 30.0]  # 400 mm² at 1 mm pixels
    tiny = [50.0, 50.0, 52.0, 52.0]  # 4 mm²
    truths = [np.array([large, tiny]), np.zeros((0, 4))]
    preds = [
        np.array([[10, 10, 30, 31, 0.9], [50, 50, 53, 53, 0.8]]),  # large hit (IoU 0.95), tiny not
        np.array([[0, 0, 20, 20, 0.95]]),  # a large false box, ranked first
    ]
    result = boxes_by_size(preds, truths, [1.0, 1.0])
    assert result["true_boxes"] == {
        "0-5 mm²": 1, "5-15 mm²": 0, "15-50 mm²": 0, "50-150 mm²": 0, "> 150 mm²": 1
    }  # fmt: skip
    # COCO's interpolated AP: the false box first, then the hit, is precision 1/2 at recall 1
    assert result["ap"]["> 150 mm²"] == pytest.approx(0.5)
    assert result["max_recall"]["> 150 mm²"] == 1.0
    # the 9 mm² box misses the tiny truth (IoU 4/9); as a 5-15 mm² box it is no false box of
    # the other classes
    assert result["ap"]["0-5 mm²"] == 0.0
    assert result["max_recall"]["0-5 mm²"] == 0.0
    assert result["ap"]["5-15 mm²"] is None

    without_the_false_box = boxes_by_size([preds[0], np.zeros((0, 5))], truths, [1.0, 1.0])
    assert without_the_false_box["ap"]["> 150 mm²"] == pytest.approx(1.0)


def test_box_sizes_are_in_mm2() -> None:
    box = np.array([[0.0, 0.0, 4.0, 4.0]])  # 16 px
    for pixel_mm2, size_class in ((0.25, "0-5 mm²"), (1.0, "15-50 mm²"), (10.0, "> 150 mm²")):
        result = boxes_by_size([np.c_[box, [[0.7]]]], [box], [pixel_mm2])
        assert result["true_boxes"][size_class] == 1
        assert result["ap"][size_class] == pytest.approx(1.0)


def test_boxes_by_size_without_truth_or_with_bad_input() -> None:
    result = boxes_by_size([np.array([[0, 0, 5, 5, 0.9]])], [np.zeros((0, 4))], [1.0])
    assert set(result["ap"].values()) == {None}
    assert sum(result["true_boxes"].values()) == 0
    with pytest.raises(ValueError, match="pixel_areas_mm2"):
        boxes_by_size([np.zeros((0, 5))], [np.zeros((0, 4))], [])
    with pytest.raises(ValueError, match=r"true_boxes\[0\]"):
        boxes_by_size([np.zeros((0, 5))], [np.array([[5, 5, 0, 0]])], [1.0])
