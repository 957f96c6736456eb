"""`--rules brats2025` against the official BraTS 2025 evaluation itself (`brats-evaluation`, a test-only
dependency): every quantity of every case and region, and the summary rows, on the four real label maps of
../shared/data/labelmaps and on generated many-lesion and edge cases, some stored with permuted, flipped or oblique
axes and scaled voxels.

The package's numbers are computed once per session (about 15 s, most of it the 512x512x176 case).
"""

from __future__ import annotations

import gzip
import struct
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from tests.evaluation.brats2025_cases import EDGE_CASE_IDS, parity_cases, stored_cases
from tests.evaluation.official_brats2025 import SUMMARY_ROWS, official_scores, same_number
from transunet3d.evaluation.batch import evaluate_folders
from transunet3d.evaluation.brats2025 import QUANTITIES
from transunet3d.evaluation.report import metric_rows, summarize_rows

REAL_CASES = ("00132-000", "00217-000", "00630-001", "01325-000")
GENERATED = parity_cases()
STORED = stored_cases()


def _pairs(folder: Path) -> dict[str, tuple[Path, Path]]:
    return {case: (folder / "pred" / f"BraTS-MET-{case}.nii.gz", folder / "ref" / f"BraTS-MET-{case}-seg.nii.gz")
            for case in sorted(p.name[10:19] for p in (folder / "ref").glob("BraTS-MET-*-seg.nii.gz"))}


def _save_scaled(labels: np.ndarray, affine: np.ndarray, path: Path, dtype: str, slope: float, inter: float) -> None:
    """Write `labels` as (labels - inter) / slope in `dtype` with that scaling in the header. nibabel chooses its
    own scaling for in-memory arrays, so scl_slope and scl_inter (bytes 112-120 of the header) are set on disk."""
    nib.save(nib.Nifti1Image(((labels - inter) / slope).astype(dtype), affine), path)
    header = bytearray(gzip.decompress(path.read_bytes()))
    header[112:120] = struct.pack("<ff", slope, inter)
    path.write_bytes(gzip.compress(bytes(header)))
    assert np.array_equal(nib.load(path).get_fdata(), labels), path


def _ours(folder: Path) -> tuple[dict, list]:
    run = evaluate_folders(folder / "pred", folder / "ref", rules="brats2025", progress=False, allow_empty=True)
    assert not run.failed, [r.error for r in run.failed]
    rows = metric_rows(run.results, "brats2025")
    return {(row["case"], row["region"]): row for row in rows}, rows


@pytest.fixture(scope="session")
def generated_folder(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("brats2025")
    for role in ("pred", "ref"):
        (folder / role).mkdir()
    for case, (pred, ref, spacing) in GENERATED.items():
        affine = [[spacing[0], 0, 0, 0], [0, spacing[1], 0, 0], [0, 0, spacing[2], 0], [0, 0, 0, 1]]
        nib.save(nib.Nifti1Image(pred, affine), folder / "pred" / f"BraTS-MET-{case}.nii.gz")
        nib.save(nib.Nifti1Image(ref, affine), folder / "ref" / f"BraTS-MET-{case}-seg.nii.gz")
    for case, (pred, ref, affine, dtype, slope, inter) in STORED.items():
        _save_scaled(pred, affine, folder / "pred" / f"BraTS-MET-{case}.nii.gz", dtype, slope, inter)
        _save_scaled(ref, affine, folder / "ref" / f"BraTS-MET-{case}-seg.nii.gz", dtype, slope, inter)
    return folder


@pytest.fixture(scope="session")
def official_generated(generated_folder, tmp_path_factory):
    return official_scores(_pairs(generated_folder), tmp_path_factory.mktemp("official_generated"))


@pytest.fixture(scope="session")
def official_real(labelmaps, tmp_path_factory):
    return official_scores(_pairs(labelmaps), tmp_path_factory.mktemp("official_real"))


@pytest.fixture(scope="session")
def ours_generated(generated_folder):
    return _ours(generated_folder)


@pytest.fixture(scope="session")
def ours_real(labelmaps):
    return _ours(labelmaps)


def _mismatches(ours: dict, official: dict, case: str) -> list[str]:
    found = []
    for region in ("WT", "TC", "ET", "RC"):
        for quantity in QUANTITIES:
            mine, theirs = float(ours[(case, region)][quantity]), official[case][region][quantity]
            if not same_number(mine, theirs):
                found.append(f"{case} {region} {quantity}: ours {mine!r}, official {theirs!r}")
    return found


@pytest.mark.parametrize("case", REAL_CASES)
def test_every_quantity_of_the_real_cases_equals_the_official_evaluation(case, ours_real, official_real):
    assert _mismatches(ours_real[0], official_real, case) == []


@pytest.mark.parametrize("case", sorted(GENERATED) + sorted(STORED))
def test_every_quantity_of_generated_cases_equals_the_official_evaluation(case, ours_generated,
                                                                          official_generated):
    assert _mismatches(ours_generated[0], official_generated, case) == []


@pytest.mark.parametrize("which", ["real", "generated"])
def test_the_summary_equals_the_official_mean_std_and_median_rows(which, request):
    rows = request.getfixturevalue(f"ours_{which}")[1]
    official = request.getfixturevalue(f"official_{which}")
    summary = summarize_rows(rows, "brats2025")
    mismatches = []
    for region, statistics in summary["regions"].items():
        for statistic in SUMMARY_ROWS:
            for quantity in QUANTITIES:
                mine = statistics[statistic][quantity]
                theirs = official[statistic][region][quantity]
                if not same_number(float("nan") if mine is None else mine, theirs, rel=1e-9):
                    mismatches.append(f"{region} {statistic} {quantity}: ours {mine!r}, official {theirs!r}")
    assert mismatches == []


def test_the_edge_cases_are_what_they_claim(ours_generated):
    """Guards the generated cases themselves: each edge case exercises the rule it was made for."""
    rows = ours_generated[0]

    def row(name, region="ET"):
        return rows[(EDGE_CASE_IDS[name], region)]

    assert row("both-empty")["all_instance_tp"] == 0 and row("both-empty")["global_dsc"] != row("both-empty")[
        "global_dsc"]  # NaN
    assert row("empty-reference")["all_instance_fp"] == 1 and row("empty-reference")["global_hd95"] == 373.0
    assert row("empty-prediction")["all_instance_fn"] == 1 and row("empty-prediction")["lesionwise_hd95_mean"] == 373
    assert row("small-lesions")["small_instance_tp"] == 2 and row("small-lesions")["small_instance_fn"] == 1
    assert row("no-overlap", "RC")["global_hd95"] == 373.0 and row("no-overlap", "RC")["all_instance_fp"] == 1
    assert row("volume-faces")["large_instance_tp"] == 1  # 27 mm^3 is large
    ties = row("ties-and-splits")
    assert (ties["large_instance_tp"], ties["large_instance_fn"], ties["all_instance_fp"]) == (1, 1, 2)
