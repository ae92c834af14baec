from __future__ import annotations

import json
import math

import numpy as np
import pytest

from pe_models.metrics import (
    RSNA_EXAM_WEIGHTS,
    RSNA_IMAGE_WEIGHT,
    binary_classification,
    binary_curves,
    count_text,
    detection_metrics,
    detection_score_cuts,
    multiclass_confusion,
    patient_level,
    pr_curve_points,
    roc_curve_points,
    rsna_weighted_log_loss,
    segmentation_overlap,
    study_overlap,
)

# ----------------------------------------------------------------------------- binary


def test_perfect_classifier() -> None:
    result = binary_classification([0, 0, 1, 1], [0.1, 0.2, 0.8, 0.9])
    assert result["accuracy"] == 1.0
    assert result["roc_auc"] == 1.0
    assert result["average_precision"] == 1.0
    assert result["sensitivity"] == result["specificity"] == result["precision"] == 1.0
    assert result["f1"] == 1.0
    assert result["confusion_matrix"] == [[2, 0], [0, 2]]
    assert (result["n"], result["n_positive"], result["n_negative"]) == (4, 2, 2)
    json.dumps(result)  # plain Python values only


def test_known_confusion_and_threshold_is_inclusive() -> None:
    y_true = [0, 0, 0, 0, 1, 1, 1]
    # tn: 0.1, 0.2; fp: 0.5 (== threshold counts positive), 0.7; fn: 0.3; tp: 0.6, 0.9
    y_score = [0.1, 0.2, 0.5, 0.7, 0.3, 0.6, 0.9]
    result = binary_classification(y_true, y_score, threshold=0.5)
    assert result["confusion_matrix"] == [[2, 2], [1, 2]]
    assert result["accuracy"] == pytest.approx(4 / 7, abs=1e-6)
    assert result["sensitivity"] == pytest.approx(2 / 3, abs=1e-6)
    assert result["specificity"] == pytest.approx(2 / 4, abs=1e-6)
    assert result["precision"] == pytest.approx(2 / 4, abs=1e-6)
    assert result["f1"] == pytest.approx(2 * 2 / (2 * 2 + 2 + 1), abs=1e-6)
    # 12 positive-negative pairs; 0.3 beats 0.1, 0.2; 0.6 beats 3; 0.9 beats 4 -> 9/12
    assert result["roc_auc"] == pytest.approx(9 / 12, abs=1e-6)
    assert result["threshold"] == 0.5


def test_single_class_has_no_auc_and_undefined_rates_are_none() -> None:
    result = binary_classification([1, 1, 1], [0.2, 0.7, 0.9])
    assert result["roc_auc"] is None
    assert result["average_precision"] is None
    assert result["specificity"] is None  # no negative case
    assert result["sensitivity"] == pytest.approx(2 / 3, abs=1e-6)
    assert binary_curves([1, 1, 1], [0.2, 0.7, 0.9]) == {}
    with pytest.raises(ValueError, match="both positive and negative"):
        roc_curve_points([1, 1, 1], [0.2, 0.7, 0.9])
    none_predicted = binary_classification([0, 1], [0.1, 0.2])
    assert none_predicted["precision"] is None
    assert none_predicted["sensitivity"] == 0.0


@pytest.mark.parametrize(
    ("y_true", "y_score", "message"),
    [
        ([0, 1, 1], [0.1, 0.9], "different lengths"),
        ([0, 2], [0.1, 0.9], "only 0 and 1"),
        ([0, 1], [0.1, 1.5], r"probabilities in \[0, 1\]"),
        ([0, 1], [0.1, float("nan")], "NaN"),
        ([[0, 1]], [[0.1, 0.9]], "1-D"),
        ([], [], "at least one"),
    ],
)
def test_binary_validation(y_true: list, y_score: list, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        binary_classification(y_true, y_score)


def test_curve_points() -> None:
    y_true, y_score = [0, 0, 1, 1], [0.1, 0.4, 0.35, 0.8]
    roc = roc_curve_points(y_true, y_score)
    assert roc["auc"] == pytest.approx(0.75)
    assert roc["fpr"][0] == 0.0
    assert roc["tpr"][0] == 0.0
    assert roc["fpr"][-1] == 1.0
    assert roc["tpr"][-1] == 1.0
    assert len(roc["fpr"]) == len(roc["tpr"]) == len(roc["thresholds"])
    assert np.all(np.diff(roc["fpr"]) >= 0)
    pr = pr_curve_points(y_true, y_score)
    assert len(pr["precision"]) == len(pr["recall"]) == len(pr["thresholds"]) + 1
    assert pr["precision"][-1] == 1.0
    assert pr["recall"][-1] == 0.0
    assert pr["prevalence"] == 0.5
    # ranks: 0.8 (+), 0.4 (-), 0.35 (+): AP = 1/2 * 1 + 1/2 * 2/3
    assert pr["average_precision"] == pytest.approx(0.5 + 1 / 3, abs=1e-6)
    both = binary_curves(y_true, y_score)
    assert both["roc"] == roc
    assert both["pr"] == pr


def test_count_text() -> None:
    assert count_text(4, 4) == "100% (4/4)"
    assert count_text(2, 3) == "66.7% (2/3)"
    assert count_text(1, 2) == "50% (1/2)"
    assert count_text(0, 0) == "n/a (0/0)"


# ----------------------------------------------------------------------------- multiclass

NAMES = ("normal", "other_disease", "pe")


def test_multiclass_confusion_known_table() -> None:
    y_true = [0, 0, 0, 1, 1, 2, 2, 2, 2]
    y_pred = [0, 0, 1, 1, 2, 2, 2, 2, 0]
    result = multiclass_confusion(y_true, y_pred, NAMES)
    assert result["confusion_matrix"] == [[2, 1, 0], [0, 1, 1], [1, 0, 3]]
    assert result["accuracy"] == pytest.approx(6 / 9, abs=1e-6)
    assert result["sensitivity"]["normal"] == pytest.approx(2 / 3, abs=1e-6)
    assert result["sensitivity"]["other_disease"] == pytest.approx(1 / 2, abs=1e-6)
    assert result["sensitivity"]["pe"] == pytest.approx(3 / 4, abs=1e-6)
    assert result["sensitivity_text"]["pe"] == "75% (3/4)"
    assert result["precision"]["pe"] == pytest.approx(3 / 4, abs=1e-6)
    assert result["support"] == {"normal": 3, "other_disease": 2, "pe": 4}
    assert result["class_names"] == list(NAMES)


def test_multiclass_accepts_scores_and_marks_absent_class() -> None:
    scores = np.array([[0.8, 0.1, 0.1], [0.1, 0.2, 0.7], [0.2, 0.5, 0.3]])
    result = multiclass_confusion([0, 2, 2], scores, NAMES)
    assert result["confusion_matrix"] == [[1, 0, 0], [0, 0, 0], [0, 1, 1]]
    assert result["sensitivity"]["other_disease"] is None  # no true case
    assert result["precision"]["other_disease"] == 0.0  # one wrong prediction


def test_multiclass_validation() -> None:
    with pytest.raises(ValueError, match="different lengths"):
        multiclass_confusion([0, 1], [0], NAMES)
    with pytest.raises(ValueError, match=r"outside 0\.\.2"):
        multiclass_confusion([0, 3], [0, 1], NAMES)
    with pytest.raises(ValueError, match="score columns"):
        multiclass_confusion([0, 1], np.zeros((2, 2)), NAMES)


# ----------------------------------------------------------------------------- patient level


def test_patient_level_any_slice_rule() -> None:
    scores = {
        "p1": [0.1, 0.2, 0.95],  # one positive slice -> positive
        "p2": [0.1, 0.5],  # equal to threshold -> positive
        "p3": [0.1, 0.4, 0.49],  # negative
        "p4": [0.6],  # false positive
        "p5": [0.0, 0.1],  # negative
    }
    labels = {"p1": 1, "p2": 1, "p3": 0, "p4": 0, "p5": 0}
    result = patient_level(scores, labels, threshold=0.5)
    assert result["confusion_matrix"] == [[2, 1], [0, 2]]
    assert result["sensitivity_text"] == "100% (2/2)"
    assert result["specificity_text"] == "66.7% (2/3)"
    assert result["accuracy_text"] == "80% (4/5)"
    assert result["patients"]["p1"] == {"label": 1, "max_score": 0.95, "predicted": 1}
    assert result["patients"]["p3"]["predicted"] == 0
    json.dumps(result)


def test_patient_level_validation() -> None:
    with pytest.raises(ValueError, match="p2"):
        patient_level({"p1": [0.5]}, {"p1": 1, "p2": 0})
    with pytest.raises(ValueError, match="no slice scores"):
        patient_level({"p1": []}, {"p1": 1})


# ----------------------------------------------------------------------------- segmentation


def _square(size: int, y0: int, x0: int, side: int) -> np.ndarray:
    mask = np.zeros((size, size), dtype=np.uint8)
    mask[y0 : y0 + side, x0 : x0 + side] = 1
    return mask


def test_iou_of_two_known_squares() -> None:
    pred, true = _square(16, 2, 2, 4), _square(16, 4, 4, 4)  # overlap 2x2, union 28
    result = segmentation_overlap([pred], [true])
    assert result["iou_micro"] == pytest.approx(4 / 28)
    assert result["dice_micro"] == pytest.approx(8 / 32)
    assert result["iou_mean"] == pytest.approx(4 / 28)
    assert (result["tp"], result["fp"], result["fn"]) == (4, 12, 12)


def test_micro_versus_mean_and_empty_slices() -> None:
    small_pred, small_true = _square(8, 0, 0, 2), _square(8, 0, 0, 2)  # perfect, 4 px
    big_pred, big_true = _square(32, 0, 0, 10), _square(32, 0, 0, 5)  # 25 / 100
    empty = np.zeros((20, 24), dtype=bool)  # both empty: excluded from the means
    missed = np.zeros((8, 8), dtype=bool)
    preds = [small_pred, big_pred, empty, missed]
    trues = [small_true, big_true, empty, _square(8, 1, 1, 3)]
    result = segmentation_overlap(preds, trues, per_slice=True, chunk=2)
    assert result["iou_micro"] == pytest.approx((4 + 25) / (4 + 100 + 9))
    assert result["iou_mean"] == pytest.approx((1.0 + 0.25 + 0.0) / 3)
    assert result["dice_mean"] == pytest.approx((1.0 + 50 / 125 + 0.0) / 3)
    assert result["n_slices"] == 4
    assert result["n_slices_scored"] == 3
    assert result["n_slices_both_empty"] == 1
    assert result["n_slices_truth_nonempty"] == 3
    assert result["per_slice_iou"] == pytest.approx([1.0, 0.25, None, 0.0])
    only_empty = segmentation_overlap([empty], [empty])
    assert only_empty["iou_micro"] is None
    assert only_empty["iou_mean"] is None


def test_segmentation_validation() -> None:
    with pytest.raises(ValueError, match="different lengths"):
        segmentation_overlap([_square(8, 0, 0, 2)], [])
    with pytest.raises(ValueError, match="same 2-D shape"):
        segmentation_overlap([_square(8, 0, 0, 2)], [_square(9, 0, 0, 2)])


def test_study_overlap_pools_voxels_and_averages_studies() -> None:
    # study 1: 30 voxels found, 10 false, 10 missed; study 2: 5 false voxels and no clot found
    result = study_overlap([(30, 10, 10), (0, 5, 20), (0, 0, 0)])
    assert result["iou_micro"] == pytest.approx(30 / 75)
    assert result["dice_micro"] == pytest.approx(60 / 105)
    assert result["dice_mean"] == pytest.approx((60 / 80 + 0.0) / 2)  # the empty study is out
    assert (result["n_studies"], result["tp"], result["fp"], result["fn"]) == (3, 30, 15, 30)
    assert study_overlap([(0, 0, 0)])["dice_mean"] is None


def test_study_overlap_validation() -> None:
    with pytest.raises(ValueError, match="at least one study"):
        study_overlap([])
    with pytest.raises(ValueError, match="negative"):
        study_overlap([(1, -1, 0)])


# ----------------------------------------------------------------------------- detection

TRUE = [np.array([[10, 10, 30, 30]]), np.array([[50, 50, 80, 90], [5, 5, 15, 15]])]


def test_exact_boxes_give_ap_one() -> None:
    preds = [
        np.array([[10, 10, 30, 30, 0.9]]),
        np.array([[50, 50, 80, 90, 0.8], [5, 5, 15, 15, 0.7]]),
    ]
    result = detection_metrics(preds, TRUE)
    assert result["ap50"] == pytest.approx(1.0)
    assert result["precision"] == result["recall"] == 1.0
    assert result["mean_iou_matched"] == pytest.approx(1.0)
    assert result["mean_best_iou"] == pytest.approx(1.0)
    assert (result["n_images"], result["n_true_boxes"], result["tp"]) == (2, 3, 3)
    json.dumps(result)


def test_missed_box_lowers_ap_and_recall() -> None:
    preds = [np.array([[10, 10, 30, 30, 0.9]]), np.array([[50, 50, 80, 90, 0.8]])]
    result = detection_metrics(preds, TRUE)
    assert result["ap50"] < 0.99
    assert result["ap50"] == pytest.approx(0.67, abs=0.01)  # COCO 101-point: recall 2/3
    assert result["recall"] == pytest.approx(2 / 3)
    assert result["precision"] == 1.0
    assert result["fn"] == 1
    assert result["mean_best_iou"] == pytest.approx(2 / 3)  # missed box counts IoU 0


def test_greedy_matching_iou_and_empty_images() -> None:
    preds = [
        # two predictions on one true box: only one may match; the second is a false positive
        np.array([[10, 10, 30, 30, 0.6], [10, 10, 30, 50, 0.9]]),  # IoU 1.0 and 0.5
        np.zeros((0, 5)),  # image with truth, no predictions
        np.array([[0, 0, 5, 5, 0.95], [0, 0, 5, 5, 0.1]]),  # image without truth
    ]
    trues = [np.array([[10, 10, 30, 30]]), np.array([[60, 60, 70, 70]]), np.zeros((0, 4))]
    result = detection_metrics(preds, trues, iou_threshold=0.5, score_threshold=0.5)
    # highest score first: the 0.9 box (IoU 0.5) takes the true box, the exact 0.6 box is an FP
    assert result["tp"] == 1
    assert result["mean_iou_matched"] == pytest.approx(0.5)
    assert result["mean_best_iou"] == pytest.approx((1.0 + 0.0) / 2)
    assert result["n_pred_boxes"] == 4
    assert result["n_pred_kept"] == 3
    assert result["fp"] == 2
    assert result["fn"] == 1
    assert result["precision"] == pytest.approx(1 / 3)
    assert result["recall"] == pytest.approx(1 / 2)
    assert result["n_images_with_truth"] == 2
    strict = detection_metrics(preds, trues, iou_threshold=0.6)
    assert strict["tp"] == 1
    assert strict["mean_iou_matched"] == pytest.approx(1.0)


def test_detection_without_truth_and_validation() -> None:
    result = detection_metrics([np.array([[0, 0, 5, 5, 0.9]])], [np.zeros((0, 4))])
    assert result["ap50"] is None
    assert result["recall"] is None
    assert result["precision"] == 0.0
    with pytest.raises(ValueError, match="different lengths"):
        detection_metrics([np.zeros((0, 5))], [])
    with pytest.raises(ValueError, match=r"shape \(n, 5\)"):
        detection_metrics([np.array([[0, 0, 5, 5]])], [np.zeros((0, 4))])
    with pytest.raises(ValueError, match="x1 >= x0"):
        detection_metrics([np.zeros((0, 5))], [np.array([[5, 5, 0, 10]])])


def test_score_cuts_count_what_a_reader_sees_at_each_cut() -> None:
    preds = [
        np.array([[10, 10, 30, 30, 0.6], [10, 10, 30, 50, 0.9]]),  # as in the greedy test
        np.zeros((0, 5)),
        np.array([[0, 0, 5, 5, 0.95], [0, 0, 5, 5, 0.1]]),
    ]
    trues = [np.array([[10, 10, 30, 30]]), np.array([[60, 60, 70, 70]]), np.zeros((0, 4))]
    metrics, pr = detection_score_cuts(preds, trues, (0.05, 0.5, 0.92, 0.99))
    assert metrics["kept_boxes"] == {"0.05": 4, "0.50": 3, "0.92": 1, "0.99": 0}
    assert metrics["precision"] == {"0.05": 0.25, "0.50": 1 / 3, "0.92": 0.0, "0.99": None}
    assert metrics["recall"] == {"0.05": 0.5, "0.50": 0.5, "0.92": 0.0, "0.99": 0.0}
    assert metrics["false_boxes_per_image"] == {
        "0.05": 1.0,
        "0.50": 2 / 3,
        "0.92": 1 / 3,
        "0.99": 0.0,
    }
    assert (metrics["n_images"], metrics["n_true_boxes"]) == (3, 2)
    assert pr["thresholds"] == pytest.approx([0.95, 0.9, 0.6, 0.1])
    assert pr["precision"] == pytest.approx([0.0, 0.5, 1 / 3, 0.25])
    assert pr["recall"] == pytest.approx([0.0, 0.5, 0.5, 0.5])
    json.dumps(metrics)


def test_score_cuts_agree_with_detection_metrics_at_every_cut() -> None:
    rng = np.random.default_rng(3)
    preds, trues = [], []
    for _ in range(12):
        corners = rng.uniform(0, 60, (rng.integers(0, 4), 2))
        trues.append(np.hstack([corners, corners + rng.uniform(4, 20, corners.shape)]))
        jitter = rng.normal(0, 3, (len(corners), 4))
        near = np.hstack([trues[-1] + jitter, rng.uniform(0, 1, (len(corners), 1))])
        far = rng.uniform(0, 60, (rng.integers(0, 5), 2))
        far = np.hstack([far, far + 8, rng.uniform(0, 1, (len(far), 1))])
        boxes = np.vstack([near, far])
        boxes[:, 2:4] = np.maximum(boxes[:, 2:4], boxes[:, 0:2])
        preds.append(boxes)
    cuts = (0.1, 0.25, 0.5, 0.75)
    metrics, _ = detection_score_cuts(preds, trues, cuts)
    for cut in cuts:
        reference = detection_metrics(preds, trues, score_threshold=cut)
        assert metrics["precision"][f"{cut:.2f}"] == reference["precision"]
        assert metrics["recall"][f"{cut:.2f}"] == reference["recall"]
        assert metrics["kept_boxes"][f"{cut:.2f}"] == reference["n_pred_kept"]
    loosest = detection_metrics(preds, trues, score_threshold=cuts[0])
    assert 0 < loosest["tp"] < loosest["n_true_boxes"] < loosest["n_pred_kept"]  # not trivial


# ----------------------------------------------------------------------------- RSNA-STR


def test_rsna_weighted_log_loss_hand_computed() -> None:
    wn, wc = RSNA_EXAM_WEIGHTS["negative_exam_for_pe"], RSNA_EXAM_WEIGHTS["central_pe"]
    w = RSNA_IMAGE_WEIGHT
    exam_truth = {"negative_exam_for_pe": [0, 1], "central_pe": [1, 0]}
    exam_pred = {"negative_exam_for_pe": [0.2, 0.9], "central_pe": [0.5, 0.1]}
    image_truth = [[1, 1, 0, 0], [0, 0]]  # q_0 = 0.5; exam 1 has no PE image: weight 0
    image_pred = [[0.8, 0.5, 0.5, 0.2], [0.3, 0.6]]
    result = rsna_weighted_log_loss(exam_truth, exam_pred, image_truth, image_pred)
    exam_sum = wn * (-math.log(0.8) - math.log(0.9)) + wc * (-math.log(0.5) - math.log(0.9))
    image_sum = w * 0.5 * (-2 * math.log(0.8) - 2 * math.log(0.5))
    weights = 2 * wn + 2 * wc + w * 0.5 * 4
    assert result["weighted_log_loss"] == pytest.approx((exam_sum + image_sum) / weights)
    assert result["weighted_log_loss"] == pytest.approx(0.3605483, abs=1e-6)
    assert result["exam_log_loss"] == pytest.approx(exam_sum / (2 * wn + 2 * wc))
    assert result["image_log_loss"] == pytest.approx(image_sum / (2 * w))
    assert result["per_label"]["central_pe"] == pytest.approx((-math.log(0.5) - math.log(0.9)) / 2)
    assert (result["n_exams"], result["n_images"]) == (2, 6)
    # images of a PE-negative exam carry no weight: changing their predictions changes nothing
    other = rsna_weighted_log_loss(exam_truth, exam_pred, image_truth, [image_pred[0], [1.0, 1.0]])
    assert other["weighted_log_loss"] == pytest.approx(result["weighted_log_loss"])
    json.dumps(result)


def test_rsna_exam_only_and_perfect() -> None:
    result = rsna_weighted_log_loss(
        {"rv_lv_ratio_gte_1": [1, 0]}, {"rv_lv_ratio_gte_1": [1.0, 0.0]}
    )
    assert result["weighted_log_loss"] == pytest.approx(0.0, abs=1e-12)
    assert result["image_log_loss"] is None


def test_rsna_validation() -> None:
    with pytest.raises(ValueError, match="unknown RSNA exam labels"):
        rsna_weighted_log_loss({"pe": [1]}, {"pe": [0.5]})
    with pytest.raises(ValueError, match="different labels"):
        rsna_weighted_log_loss({"central_pe": [1]}, {"chronic_pe": [0.5]})
    with pytest.raises(ValueError, match="different lengths"):
        rsna_weighted_log_loss({"central_pe": [1, 0]}, {"central_pe": [0.5]})
    with pytest.raises(ValueError, match="exams"):
        rsna_weighted_log_loss({"central_pe": [1]}, {"central_pe": [0.5]}, [[1], [0]], [[1], [0]])
    with pytest.raises(ValueError, match="both"):
        rsna_weighted_log_loss({"central_pe": [1]}, {"central_pe": [0.5]}, [[1]], None)
    with pytest.raises(ValueError, match="nothing to score"):
        rsna_weighted_log_loss({}, {}, [[0, 0]], [[0.1, 0.2]])
