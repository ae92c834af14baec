from __future__ import annotations

import segmentation_models_pytorch as smp
import torch
import torch.nn.functional as F  # noqa: N812

from pe_models.train.losses import lesion_map_loss, mask_loss, piece_weights


def two_pieces() -> torch.Tensor:
    """(1, 32, 32): a 4 px piece and a 100 px piece."""
    truth = torch.zeros(1, 32, 32)
    truth[0, 2:4, 2:4] = 1
    truth[0, 15:25, 15:25] = 1
    return truth


def test_small_pieces_weigh_like_a_reference_piece_and_the_rest_stays_one() -> None:
    weights = piece_weights(two_pieces(), reference_px=50)[0]
    assert torch.equal(weights[2:4, 2:4], torch.full((2, 2), 12.5))  # 50 / 4 px
    assert torch.equal(weights[15:25, 15:25], torch.ones(10, 10))  # larger than 50 px
    background = torch.ones(32, 32, dtype=torch.bool)
    background[2:4, 2:4] = background[15:25, 15:25] = False
    assert torch.equal(weights[background], torch.ones(int(background.sum())))


def test_diagonal_neighbours_make_one_piece() -> None:
    truth = torch.zeros(1, 8, 8)
    truth[0, 1, 1] = truth[0, 2, 2] = 1
    assert piece_weights(truth, reference_px=10)[0, 1, 1] == 5.0


def test_a_missed_small_piece_costs_more_with_piece_weights() -> None:
    truth = two_pieces()
    logits = torch.where(truth > 0, 4.0, -4.0)[:, None]
    logits[0, 0, 2:4, 2:4] = -4.0  # the small piece missed
    dice = smp.losses.DiceLoss("binary", from_logits=True)
    plain = mask_loss(logits, truth, dice)
    weighted = mask_loss(logits, truth, dice, piece_weight_px=100)
    expected_plain = F.binary_cross_entropy_with_logits(logits, truth[:, None]) + dice(
        logits, truth[:, None]
    )
    assert torch.isclose(plain, expected_plain)
    assert weighted > plain


def test_a_lesion_pixel_makes_its_cell_positive_and_both_kinds_of_cell_weigh_half() -> None:
    masks = torch.zeros(1, 32, 32)
    masks[0, 9, 17] = 1  # one pixel: cell (1, 2) of a 4 x 4 map of 8 px cells
    right = torch.full((1, 1, 4, 4), -6.0)
    right[0, 0, 1, 2] = 6.0
    assert lesion_map_loss(right, masks) < 0.01
    one_cell_wrong = right.clone()
    one_cell_wrong[0, 0, 1, 2] = -6.0  # the lesion's cell missed
    negatives_wrong = torch.full((1, 1, 4, 4), 6.0)  # every clear cell called a lesion
    # The one positive cell weighs as much as the fifteen negative ones together.
    torch.testing.assert_close(
        lesion_map_loss(one_cell_wrong, masks), lesion_map_loss(negatives_wrong, masks)
    )
    clear = torch.zeros(1, 32, 32)  # no lesion in the batch: the negative cells alone
    torch.testing.assert_close(
        lesion_map_loss(right, clear),
        F.binary_cross_entropy_with_logits(right, torch.zeros_like(right)),
    )
