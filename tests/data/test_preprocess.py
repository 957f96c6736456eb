import json
import os
from pathlib import Path

import numpy as np
import pytest

from tests.factories import add_cavities, brain_case_arrays, write_case
from transunet3d.data.cache import cached_case_ids, open_case, read_dataset
from transunet3d.data.crop import crop, uncrop
from transunet3d.data.labels import label_scheme
from transunet3d.data.layout import discover_cases
from transunet3d.data.nifti import Geometry
from transunet3d.data.preprocess import preprocess_dataset
from transunet3d.data.resample import resampled_shape
from transunet3d.data.validate import load_case

SCHEME = label_scheme("brats-mets-2023")

CASE = "BraTS-MET-00001-000"


def test_cached_case_matches_the_raw_case(case_root: Path, tmp_path: Path):
    out = tmp_path / "pp"
    report = preprocess_dataset(case_root, out, progress=False)
    assert report.written == [CASE] and not report.failed
    cached = open_case(out, CASE)
    assert isinstance(cached.image, np.memmap) and isinstance(cached.seg, np.memmap)
    image, seg = brain_case_arrays()
    props = cached.properties
    box = [tuple(b) for b in props["crop_box"]]
    assert box == [(2, 10), (3, 12), (1, 8)]
    # Undo the z-score with the stored statistics and paste back: the raw volume, exactly up to float rounding.
    stats = props["normalization"]
    restored = np.stack([c * stats[m]["std"] + stats[m]["mean"] for c, m in zip(cached.image, props["modalities"])])
    restored[:, np.all(cached.image == 0, axis=0)] = 0
    np.testing.assert_allclose(uncrop(restored, box, image.shape[1:]), image, rtol=1e-5)
    np.testing.assert_array_equal(uncrop(np.asarray(cached.seg), box, seg.shape), seg)
    assert Geometry.from_dict(props["geometry"]) == load_case(discover_cases(case_root)[0]).geometry


def test_brain_voxels_are_z_scored(case_root: Path, tmp_path: Path):
    preprocess_dataset(case_root, tmp_path / "pp", progress=False)
    image = np.asarray(open_case(tmp_path / "pp", CASE).image)
    brain = np.any(image != 0, axis=0)
    np.testing.assert_allclose(image[:, brain].mean(axis=1), 0, atol=1e-5)
    np.testing.assert_allclose(image[:, brain].std(axis=1), 1, atol=1e-4)


def test_foreground_locations_lie_in_their_region(case_root: Path, tmp_path: Path):
    preprocess_dataset(case_root, tmp_path / "pp", foreground_samples=5, progress=False)
    cached = open_case(tmp_path / "pp", CASE)
    regions = SCHEME.labels_to_regions(np.asarray(cached.seg))
    assert cached.properties["region_voxels"] == {"WT": 48, "TC": 4, "ET": 3}
    for index, name in enumerate(("WT", "TC", "ET")):
        locations = np.array(cached.properties["foreground_locations"][name])
        assert len(locations) == min(5, cached.properties["region_voxels"][name])
        assert len({tuple(p) for p in locations}) == len(locations)
        assert regions[index][tuple(locations.T)].all()


def test_a_2025_cache_records_its_scheme_and_locates_the_cavity(case_root: Path, tmp_path: Path):
    add_cavities(case_root)
    report = preprocess_dataset(case_root, tmp_path / "pp", foreground_samples=5, progress=False,
                                labels="brats-mets-2025")
    assert report.written == [CASE] and report.labels == "brats-mets-2025"
    dataset = read_dataset(tmp_path / "pp")
    assert (dataset["labels"], dataset["regions"]) == ("brats-mets-2025", ["WT", "TC", "ET", "RC"])
    cached = open_case(tmp_path / "pp", CASE)
    props = cached.properties
    assert props["labels"] == "brats-mets-2025"
    assert props["region_voxels"] == {"WT": 48, "TC": 4, "ET": 3, "RC": int((np.asarray(cached.seg) == 4).sum())}
    cavity = np.asarray(cached.seg) == 4
    assert cavity.any() and len(props["foreground_locations"]["RC"]) == 5 and len(props["lesion_locations"]["RC"])
    assert cavity[tuple(np.array(props["foreground_locations"]["RC"]).T)].all()
    # Under the 2023 scheme the cavity is an unknown label: the case fails and leaves the cache.
    refused = preprocess_dataset(case_root, tmp_path / "pp", progress=False)
    assert refused.failed[CASE].endswith("labels must be in {0,1,2,3}, found 4")
    assert read_dataset(tmp_path / "pp")["cases"] == []


def test_older_caches_are_2023_and_a_rerun_with_another_scheme_redoes_the_cases(case_root: Path, tmp_path: Path):
    out = tmp_path / "pp"
    preprocess_dataset(case_root, out, progress=False)
    # As a cache written before label schemes: no "labels" anywhere.
    for path in (out / "dataset.json", out / f"{CASE}.json"):
        path.write_text(json.dumps({k: v for k, v in json.loads(path.read_text()).items() if k != "labels"}))
    assert read_dataset(out)["labels"] == "brats-mets-2023"
    assert preprocess_dataset(case_root, out, progress=False).skipped == [CASE]
    assert preprocess_dataset(case_root, out, progress=False, labels="brats-mets-2025").written == [CASE]
    assert open_case(out, CASE).properties["region_voxels"]["RC"] == 0


def test_rerun_skips_complete_cases_and_redoes_changed_ones(case_root: Path, tmp_path: Path):
    out = tmp_path / "pp"
    preprocess_dataset(case_root, out, progress=False)
    assert preprocess_dataset(case_root, out, progress=False).skipped == [CASE]
    t1c = case_root / CASE / f"{CASE}-t1c.nii.gz"
    os.utime(t1c, ns=(t1c.stat().st_atime_ns, t1c.stat().st_mtime_ns + 10**9))
    assert preprocess_dataset(case_root, out, progress=False).written == [CASE]


def test_interrupted_case_is_not_complete_and_is_redone(case_root: Path, tmp_path: Path, monkeypatch):
    out = tmp_path / "pp"

    def crash(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr("transunet3d.files.write_json", crash)
    monkeypatch.setattr("transunet3d.data.cache.write_json", crash)
    with pytest.raises(KeyboardInterrupt):
        preprocess_dataset(case_root, out, progress=False)
    assert cached_case_ids(out) == []
    assert not list(out.glob(".*tmp*")), "temporary files must be cleaned up"
    monkeypatch.undo()
    assert preprocess_dataset(case_root, out, progress=False).written == [CASE]
    assert cached_case_ids(out) == [CASE]


def test_dataset_json_lists_complete_cases_and_workers_agree(tmp_path: Path):
    raw = tmp_path / "raw"
    for index in range(3):
        write_case(raw, f"BraTS-MET-0000{index}-000", seed=index)
    preprocess_dataset(raw, tmp_path / "serial", workers=1, progress=False)
    preprocess_dataset(raw, tmp_path / "parallel", workers=2, progress=False)
    listed = json.loads((tmp_path / "parallel" / "dataset.json").read_text())["cases"]
    assert listed == [f"BraTS-MET-0000{i}-000" for i in range(3)]
    for case_id in listed:
        a, b = open_case(tmp_path / "serial", case_id), open_case(tmp_path / "parallel", case_id)
        np.testing.assert_array_equal(a.image, b.image)
        assert a.properties["foreground_locations"] == b.properties["foreground_locations"]


def test_case_without_seg_is_cached_without_seg(tmp_path: Path):
    write_case(tmp_path / "raw", with_seg=False)
    preprocess_dataset(tmp_path / "raw", tmp_path / "pp", progress=False)
    cached = open_case(tmp_path / "pp", CASE)
    assert cached.seg is None and not cached.properties["has_seg"]
    assert "foreground_locations" not in cached.properties


def _only_case(cache: Path):
    return open_case(cache, cached_case_ids(cache)[0])


def test_an_axis_order_variant_gives_the_cache_of_the_ras_case(phantom_variants, tmp_path: Path):
    caches = {}
    for name in ("ras", "lps", "psr"):
        preprocess_dataset(phantom_variants[name], tmp_path / name, progress=False)
        caches[name] = _only_case(tmp_path / name)
    ras = caches["ras"]
    assert ras.properties["axis_codes"] == "RAS" and ras.properties["target_spacing"] == [2.0, 2.0, 2.0]
    for name in ("lps", "psr"):
        other = caches[name]
        np.testing.assert_array_equal(other.image, ras.image)
        np.testing.assert_array_equal(other.seg, ras.seg)
        assert other.properties["axis_codes"] == name.upper()
        for key in ("crop_box", "canonical_shape", "cropped_shape", "resampled_shape", "original_spacing",
                    "target_spacing", "normalization", "foreground_locations", "lesion_locations"):
            assert other.properties[key] == ras.properties[key], key


@pytest.mark.parametrize("name, spacing", [("fine", (1.0, 1.0, 2.0)), ("thick", (2.0, 2.0, 6.0))])
def test_a_case_at_another_voxel_size_is_cached_at_the_target_spacing(phantom_variants, tmp_path: Path,
                                                                       name, spacing):
    preprocess_dataset(phantom_variants[name], tmp_path / "pre", target_spacing=(2.0, 2.0, 2.0), progress=False)
    cached = _only_case(tmp_path / "pre")
    props = cached.properties
    box = [tuple(bounds) for bounds in props["crop_box"]]
    # The variant keeps the phantom's extent: 40 slices of 2 mm are 13 of 6.15 mm.
    np.testing.assert_allclose(props["original_spacing"], spacing, rtol=0.03)
    assert props["target_spacing"] == [2.0, 2.0, 2.0] and props["cropped_shape"] == [hi - lo for lo, hi in box]
    assert props["resampled_shape"] == list(resampled_shape(props["cropped_shape"], props["original_spacing"],
                                                            (2.0, 2.0, 2.0)))
    assert props["resampled_shape"] != props["cropped_shape"]
    assert cached.image.shape[1:] == cached.seg.shape == tuple(props["resampled_shape"])
    raw_seg = load_case(discover_cases(phantom_variants[name])[0]).seg
    assert props["canonical_shape"] == list(raw_seg.shape)
    np.testing.assert_array_equal(cached.original_seg, crop(raw_seg, box))  # the reference, on its own grid
    regions = SCHEME.labels_to_regions(np.asarray(cached.seg))
    for index, region in enumerate(("WT", "TC", "ET")):
        locations = np.array(props["foreground_locations"][region])
        assert props["region_voxels"][region] == regions[index].sum() > 0
        assert regions[index][tuple(locations.T)].all()


def test_a_rerun_at_another_target_spacing_redoes_the_cases(phantom_variants, tmp_path: Path):
    raw, out = phantom_variants["ras"], tmp_path / "pre"
    assert preprocess_dataset(raw, out, progress=False).written
    assert preprocess_dataset(raw, out, target_spacing=(2.0, 2.0, 2.0), progress=False).skipped
    assert preprocess_dataset(raw, out, target_spacing=(3.0, 3.0, 3.0), progress=False).written
    cached = _only_case(out)
    assert cached.properties["target_spacing"] == [3.0, 3.0, 3.0] and cached.seg.shape != cached.original_seg.shape
    assert json.loads((out / "dataset.json").read_text())["target_spacing"] == [3.0, 3.0, 3.0]
    preprocess_dataset(raw, out, progress=False)
    cached = _only_case(out)
    assert cached.original_seg is cached.seg and not list(out.glob("*_seg_original.npy"))


@pytest.mark.parametrize("spacing", [["1e-4", "1", "1"], ["1", "1", "1000"]])
def test_a_target_spacing_out_of_range_names_the_option_and_writes_nothing(spacing: list[str], case_root: Path,
                                                                            tmp_path: Path):
    from click.testing import CliRunner

    from transunet3d.cli.main import cli

    result = CliRunner().invoke(cli, ["preprocess", str(case_root), str(tmp_path / "pre"), "--target-spacing",
                                      *spacing])
    shown = " ".join(f"{float(side):g}" for side in spacing)
    assert result.exit_code == 2 and result.stderr.strip() == (
        f"error: --target-spacing {shown}: expected three voxel sizes from 0.01 to 100 mm"), result.output
    assert not (tmp_path / "pre").exists()
