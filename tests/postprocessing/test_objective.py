"""The tuning objective of a case is the evaluator's lesion-wise Dice of the labels the settings make."""

from pathlib import Path

import numpy as np
import pytest

from tests.postprocessing.factories import evaluated, random_case, write_tuning_case
from transunet3d.errors import UserError
from transunet3d.postprocessing import PostprocessSettings
from transunet3d.postprocessing.objective import score_candidates

ZOOMS = (1.0, 0.8, 1.5)
SETTINGS = [
    PostprocessSettings(),
    PostprocessSettings.uniform(0.3, 10.0, True),
    PostprocessSettings((0.4, 0.6, 0.7), (5.0, 20.0, 0.0), False),
    PostprocessSettings((0.7, 0.3, 0.5), (0.0, 2.0, 40.0), True),
]


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_scores_are_the_evaluators_lesionwise_dice(tmp_path: Path, seed: int):
    case = write_tuning_case(tmp_path, f"case{seed}", *random_case(seed), zooms=ZOOMS)
    scores = score_candidates((case, SETTINGS))
    assert scores.shape == (len(SETTINGS), 3)
    for settings, row in zip(SETTINGS, scores):
        regions = evaluated(case, settings).regions
        assert row.tolist() == [regions[region].lesionwise_dice for region in ("WT", "TC", "ET")]
    assert len({tuple(row) for row in scores}) == len(SETTINGS)  # the settings really label differently


def test_a_case_with_nothing_in_either_map_scores_one(tmp_path: Path):
    case = write_tuning_case(tmp_path, "empty", np.full((3, 8, 8, 8), 0.1, np.float32), np.zeros((8, 8, 8)))
    np.testing.assert_array_equal(score_candidates((case, SETTINGS[:2])), np.ones((2, 3)))


def test_probabilities_that_do_not_fit_the_reference_are_a_user_error(tmp_path: Path):
    case = write_tuning_case(tmp_path, "case", np.zeros((3, 8, 8, 8)), np.zeros((8, 8, 9)))
    with pytest.raises(UserError, match=r"case: case_probabilities.npz: probabilities of shape \(3, 8, 8, 8\) do "
                                        r"not fit the reference case-seg.nii.gz of shape \(8, 8, 9\)"):
        score_candidates((case, SETTINGS))


def test_unreadable_probabilities_are_a_user_error(tmp_path: Path):
    case = write_tuning_case(tmp_path, "case", np.zeros((3, 8, 8, 8)), np.zeros((8, 8, 8)))
    case.probabilities.write_bytes(b"not a zip file")
    with pytest.raises(UserError, match=r"case_probabilities\.npz: cannot be read as saved probabilities"):
        score_candidates((case, SETTINGS))
