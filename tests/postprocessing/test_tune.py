"""Coordinate-descent tuning finds the settings that hand-made cases call for, and prefers simple ones on ties."""

import json
from pathlib import Path

import numpy as np
import pytest

from tests.postprocessing.factories import (
    SHAPE,
    confident,
    evaluated,
    lesion,
    random_case,
    write_tuning_case,
)
from transunet3d.data.labels import label_scheme
from transunet3d.errors import UserError
from transunet3d.evaluation.report import summarize
from transunet3d.postprocessing import (
    PostprocessSettings,
    TuningResult,
    read_postprocessing,
    tune_postprocessing,
    write_postprocessing,
)

DEFAULT = PostprocessSettings()


def two_lesions() -> np.ndarray:
    """Reference labels with lesions of 6^3 and 7^3 voxels (WT 216 and 343, TC 64 and 125, ET 8 and 27)."""
    labels = np.zeros(SHAPE, dtype=np.uint8)
    lesion(labels, (2, 2, 2), 6)
    lesion(labels, (12, 12, 12), 7)
    return labels


def with_specks(probabilities: np.ndarray) -> np.ndarray:
    """Three false-positive specks of edema (4 voxels, 4 mm^3) at 0.55, away from the lesions."""
    probabilities = probabilities.copy()
    for x, y, z in ((20, 2, 20), (2, 20, 20), (20, 20, 2)):
        probabilities[0, x:x + 2, y:y + 2, z] = 0.55
    return probabilities


def tune(tmp_path: Path, probabilities: list[np.ndarray], workers: int = 1) -> TuningResult:
    cases = [write_tuning_case(tmp_path, f"case{index}", p, two_lesions()) for index, p in enumerate(probabilities)]
    return tune_postprocessing(cases, workers=workers, progress=False)


def score_of(result: TuningResult, region: str, threshold: float, min_lesion_mm3: float) -> float:
    index = ("WT", "TC", "ET").index(region)
    return next(trial.score for trial in result.tried if trial.step == region
                and trial.settings.thresholds[index] == threshold and trial.settings.min_lesion_mm3[index]
                == min_lesion_mm3)


def test_without_anything_to_remove_the_defaults_stay(tmp_path: Path):
    result = tune(tmp_path, [confident(two_lesions())])
    assert result.settings == DEFAULT
    assert result.score_before == result.score_after == 1.0
    # Every threshold and small size scores 1 here: the defaults win the ties. One pass: nothing changed.
    assert score_of(result, "WT", 0.3, 20.0) == score_of(result, "ET", 0.7, 5.0) == 1.0
    assert len(result.tried) == 3 * 5 * 7 + 2 and {trial.pass_number for trial in result.tried} == {1}


def test_specks_go_with_the_smallest_minimum_size_rather_than_another_threshold(tmp_path: Path):
    clean = confident(two_lesions())
    result = tune(tmp_path, [with_specks(clean), clean])
    assert result.settings == PostprocessSettings((0.5, 0.5, 0.5), (5.0, 0.0, 0.0), False)
    assert result.score_after == 1.0 and result.regions_after == {"WT": 1.0, "TC": 1.0, "ET": 1.0}
    assert result.regions_before["WT"] == pytest.approx((2 / 5 + 1) / 2)  # 2 lesions + 3 false positives
    assert result.score_before == pytest.approx((2 / 5 + 1 + 1 + 1 + 1 + 1) / 6)
    assert score_of(result, "WT", 0.6, 0.0) == 1.0  # a tie that the simpler setting won


def test_the_held_out_score_scores_each_case_with_the_settings_tuned_on_the_others(tmp_path: Path):
    clean = confident(two_lesions())
    result = tune(tmp_path, [with_specks(clean), clean])
    # Tuned on the clean case alone nothing calls for a minimum size, so the specked case keeps its 3 false
    # positives (WT 2/5); tuned on the specked case, the clean case loses nothing to the 5 mm^3 minimum.
    assert result.score_after == 1.0
    assert result.score_held_out == pytest.approx(((2 / 5 + 1 + 1) / 3 + 1) / 2)
    assert tune(tmp_path / "one", [clean]).score_held_out is None  # no other case to tune on


def test_beyond_ten_cases_the_held_out_score_holds_out_groups_of_cases(tmp_path: Path):
    clean = confident(two_lesions())
    # Cases 0 and 10 share a group (i mod 10): held out together, the tuning on the 10 clean cases keeps every
    # speck in both. One case out at a time, the other specked case would call for the minimum size.
    result = tune(tmp_path, [with_specks(clean) if index in (0, 10) else clean for index in range(12)])
    assert result.settings == PostprocessSettings((0.5, 0.5, 0.5), (5.0, 0.0, 0.0), False)
    assert result.score_held_out == pytest.approx((2 * (2 / 5 + 1 + 1) / 3 + 10) / 12)


def test_lesions_whose_true_extent_is_above_035_get_a_lower_threshold(tmp_path: Path):
    probabilities = confident(two_lesions())
    probabilities[0][(probabilities[0] > 0) & (probabilities[1] == 0)] = 0.45  # the edema around each core
    result = tune(tmp_path, [probabilities])
    assert result.settings == PostprocessSettings((0.4, 0.5, 0.5), (0.0, 0.0, 0.0), False)  # 0.3 ties, is further
    assert result.regions_after["WT"] == 1.0 > result.regions_before["WT"]


def test_a_coreless_edema_too_big_and_too_sure_for_the_other_settings_needs_require_core(tmp_path: Path):
    probabilities = confident(two_lesions())
    probabilities[0, 18:23, 1:6, 1:6] = 0.9  # 125 mm^3 of edema without a core
    result = tune(tmp_path, [probabilities])
    assert result.settings == PostprocessSettings.uniform(0.5, 0.0, True)
    assert (result.score_before, result.score_after) == (pytest.approx((2 / 3 + 2) / 3), 1.0)


def test_the_objective_is_the_evaluators_mean_lesionwise_dice(tmp_path: Path):
    cases = [write_tuning_case(tmp_path, f"case{seed}", *random_case(seed), zooms=(1.0, 0.8, 1.5))
             for seed in range(2)]
    result = tune_postprocessing(cases, progress=False)
    distinct = {trial.settings: trial.score for trial in result.tried}
    assert len(set(distinct.values())) > 20  # the grid really changes the labels of these cases
    for settings in [DEFAULT, result.settings, *list(distinct)[::25]]:
        overall = summarize([evaluated(case, settings) for case in cases])["overall"]
        assert distinct[settings] == overall["mean_lesionwise_dice"]
    assert result.score_before == distinct[DEFAULT]
    assert result.score_after == pytest.approx(max(distinct.values()), abs=1e-8)
    assert result.score_after > result.score_before


def test_two_workers_give_the_same_result(tmp_path: Path):
    clean = confident(two_lesions())
    one = tune(tmp_path / "one", [with_specks(clean), clean])
    two = tune(tmp_path / "two", [with_specks(clean), clean], workers=2)
    assert (two.settings, two.score_after, two.tried) == (one.settings, one.score_after, one.tried)


def test_a_broken_case_stops_the_tuning_with_a_user_error_also_from_a_worker(tmp_path: Path):
    clean = confident(two_lesions())
    cases = [write_tuning_case(tmp_path, f"case{index}", clean, two_lesions()) for index in range(2)]
    cases[1].probabilities.write_bytes(b"truncated")
    with pytest.raises(UserError, match=r"case1: case1_probabilities\.npz: cannot be read as saved probabilities"):
        tune_postprocessing(cases, workers=2, progress=False)


@pytest.mark.parametrize("bad", [float("nan"), 5.0])
def test_values_that_are_not_probabilities_stop_the_tuning(tmp_path: Path, bad: float):
    """NaN (a diverged model) or values outside 0-1 were tuned on without a word."""
    clean = confident(two_lesions())
    broken = clean.copy()
    broken[0, 0, 0, 0] = bad
    cases = [write_tuning_case(tmp_path, "case0", clean, two_lesions()),
             write_tuning_case(tmp_path, "case1", broken, two_lesions())]
    with pytest.raises(UserError, match=r"^case1: case1_probabilities\.npz: holds values that are not probabilities"):
        tune_postprocessing(cases, progress=False)


def test_no_cases_is_a_user_error():
    with pytest.raises(UserError, match="no cases"):
        tune_postprocessing([], progress=False)


def test_the_written_file_holds_the_result_and_reads_back_as_settings(tmp_path: Path):
    clean = confident(two_lesions())
    result = tune(tmp_path, [with_specks(clean)])
    path = tmp_path / "postprocessing.json"
    write_postprocessing(path, result)
    data = json.loads(path.read_text())
    assert list(data) == ["settings", "cases", "score_before", "score_after", "score_held_out", "regions", "tried",
                          "seconds"]
    assert data["score_held_out"] is None  # one case
    assert data["regions"]["WT"] == {"before": result.regions_before["WT"], "after": 1.0, "threshold": 0.5,
                                     "min_lesion_mm3": 5.0}
    assert len(data["tried"]) == len(result.tried)
    assert data["tried"][-1] == {"pass": 2, "region": "require_core", "threshold": None, "min_lesion_mm3": None,
                                 "require_core": True, "score": 1.0}
    assert read_postprocessing(path) == result.settings


@pytest.mark.parametrize("content, message", [
    (None, "no such post-processing file"),
    ("{not json", "not a readable JSON file"),
    ('{"cases": 3}', "holds no post-processing settings"),
    ('{"settings": {"thresholds": {"WT": 2}}}', "thresholds must give exactly the regions WT, TC, ET"),
])
def test_a_missing_or_bad_file_is_a_one_line_user_error(tmp_path: Path, content, message):
    path = tmp_path / "postprocessing.json"
    if content is not None:
        path.write_text(content)
    with pytest.raises(UserError, match=message) as error:
        read_postprocessing(path)
    assert str(error.value).startswith(str(path)) and "\n" not in str(error.value)


def test_2025_tuning_gives_the_cavity_its_own_minimum_size_and_reads_back(tmp_path: Path):
    scheme = label_scheme("brats-mets-2025")
    labels = two_lesions()
    labels[2:8, 12:18, 2:8] = 4  # a cavity
    probabilities = confident(labels, scheme)
    probabilities[3, 20:22, 2:4, 20] = 0.55  # a 4-voxel false-positive cavity
    case = write_tuning_case(tmp_path, "case", probabilities, labels, regions=scheme.region_names)
    result = tune_postprocessing([case], progress=False, scheme=scheme)
    assert result.settings == PostprocessSettings((0.5,) * 4, (0.0, 0.0, 0.0, 5.0), False, scheme)
    assert result.regions_before == {"WT": 1.0, "TC": 1.0, "ET": 1.0, "RC": 0.5}
    assert result.score_after == 1.0
    write_postprocessing(tmp_path / "postprocessing.json", result)
    assert read_postprocessing(tmp_path / "postprocessing.json", scheme) == result.settings
    with pytest.raises(UserError, match="must give exactly the regions WT, TC, ET, got"):
        read_postprocessing(tmp_path / "postprocessing.json")  # a 2023 run cannot use it
    with pytest.raises(UserError, match=r"labels must be in \{0,1,2,3\}, found 4"):
        tune_postprocessing([case], progress=False)  # tuned as a 2023 run
