"""benchmarks/spacing_variants.py: the parts that make its numbers, on hand-made arrays (the whole run takes minutes
per series and is documented in docs/inference.md)."""

from __future__ import annotations

from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

BENCHMARKS = Path(__file__).resolve().parents[2] / "benchmarks"


@pytest.fixture
def variants(monkeypatch):
    monkeypatch.syspath_prepend(str(BENCHMARKS))
    import spacing_variants

    return spacing_variants


def test_the_copies_keep_the_generated_grid_and_change_one_thing_each(variants):
    copies = variants.copies((1.2, 1.2, 1.5))
    assert copies[variants.NATIVE] == []
    assert copies["axis order ARI"] == ["--axis-order", "ARI"]
    assert [float(v) for v in copies["2x finer in-plane"][1:]] == [0.6, 0.6, 1.5]
    assert [float(v) for v in copies[variants.THICK][1:]] == pytest.approx([1.2, 1.2, 4.5])
    assert [float(v) for v in copies["0.5 x 0.5 x 1 mm"][1:]] == [0.5, 0.5, 1.0]
    assert [float(v) for v in copies["1 x 1 x 3 mm"][1:]] == [1.0, 1.0, 3.0]


def test_a_prediction_goes_to_the_thick_grid_by_the_slice_at_each_slab_centre(variants):
    labels = np.zeros((2, 2, 9), np.uint8)
    labels[..., 4] = 3  # the centre slice of the middle slab of three
    labels[..., 6] = 1  # the first slice of the last slab: not its centre
    thick = variants.on_grid_of(labels, (2, 2, 3))
    assert thick.shape == (2, 2, 3)
    assert thick[0, 0].tolist() == [0, 3, 0]


def test_native_predictions_are_written_with_the_thick_references_geometry(variants, tmp_path):
    affine = np.diag([1.0, 1.0, 3.0, 1.0])
    case = tmp_path / "thick" / "BraTS-MET-00001-000"
    case.mkdir(parents=True)
    nib.save(nib.Nifti1Image(np.zeros((4, 4, 3), np.uint8), affine), case / "BraTS-MET-00001-000-seg.nii.gz")
    predictions = tmp_path / "native"
    predictions.mkdir()
    fine = np.zeros((4, 4, 9), np.uint8)
    fine[1, 1, 7] = 2
    nib.save(nib.Nifti1Image(fine, np.eye(4)), predictions / "BraTS-MET-00001-000.nii.gz")
    out = tmp_path / "on_thick"
    variants.native_on_thick_grid(predictions, tmp_path / "thick", out)
    written = nib.load(out / "BraTS-MET-00001-000.nii.gz")
    assert np.allclose(written.affine, affine)
    assert np.argwhere(np.asarray(written.dataobj)).tolist() == [[1, 1, 2]]
    assert [path.name for path in out.iterdir()] == ["BraTS-MET-00001-000.nii.gz"]


def test_the_table_gives_each_copys_gap_to_the_copy_as_generated(variants):
    def scores(mean):
        return {"mean": mean, "tc_found_false_missed": [3, 0, 1]}

    table = variants.table({7: {variants.NATIVE: scores(0.9), variants.THICK: scores(0.85)}})
    assert table.splitlines()[2] == "| 7 | 0.900 (3 / 0 / 1) | 0.850 (3 / 0 / 1, gap +0.050) |"
