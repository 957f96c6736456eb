"""brats2023-rc: the BraTS 2023 lesion-wise metrics over the regions of the 2025 scheme, for out-of-fold validation
of runs with resection cavities."""

import numpy as np
import pytest

from transunet3d.evaluation.case import evaluate_labels
from transunet3d.evaluation.rules import COLUMNS_2023, VALIDATION_RULES, rule_set


def _maps():
    ref = np.zeros((40, 40, 40), dtype=np.uint8)
    ref[5:12, 5:12, 5:12] = 2
    ref[7:10, 7:10, 7:10] = 3
    ref[25:33, 25:33, 25:33] = 4  # a cavity, found exactly
    ref[20:23, 5:8, 30:33] = 4  # a second cavity, missed
    pred = ref.copy()
    pred[20:23, 5:8, 30:33] = 0
    pred[5:12, 5:12, 11] = 0  # the edema one slice short
    return pred, ref


def test_tumour_regions_score_as_under_the_2023_rules_and_the_cavity_as_one_more_region():
    pred, ref = _maps()
    with_cavity, _ = evaluate_labels(pred, ref, (1.0, 1.0, 1.0), "brats2023-rc")
    tumour_only, _ = evaluate_labels(np.where(pred == 4, 0, pred), np.where(ref == 4, 0, ref), (1.0, 1.0, 1.0),
                                     "brats2023")
    assert list(with_cavity) == ["WT", "TC", "ET", "RC"]
    for region in ("WT", "TC", "ET"):
        assert [getattr(with_cavity[region], name) for name in COLUMNS_2023] == \
            [getattr(tumour_only[region], name) for name in COLUMNS_2023]
    cavity = with_cavity["RC"]
    assert (cavity.num_tp, cavity.num_fp, cavity.num_fn) == (1, 0, 1)
    assert cavity.lesionwise_dice == pytest.approx(0.5)  # one perfect cavity, one missed (Dice 0)


def test_each_label_scheme_is_validated_by_rules_of_its_own_labels():
    for scheme, rules in VALIDATION_RULES.items():
        assert rule_set(rules).scheme.name == scheme
