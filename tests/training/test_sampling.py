"""Patch sampling from the cache: foreground oversampling, padding, exact reads, reproducibility."""

from pathlib import Path

import numpy as np
import pytest

from tests.factories import write_case
from transunet3d.config.schema import AugmentConfig
from transunet3d.data.cache import CachedCase, open_case
from transunet3d.data.labels import label_scheme
from transunet3d.data.preprocess import foreground_properties, preprocess_dataset
from transunet3d.training import PatchBatches, forced_foreground, sample_patch
from transunet3d.training.augment import SPATIAL_IDENTITY, read_size
from transunet3d.training.sampling import foreground_centre

CASES = ["BraTS-MET-00001-000", "BraTS-MET-00002-000"]


@pytest.fixture
def cache(tmp_path: Path) -> Path:
    for index, case_id in enumerate(CASES):
        write_case(tmp_path / "raw", case_id, seed=index)
    preprocess_dataset(tmp_path / "raw", tmp_path / "pre", progress=False)
    return tmp_path / "pre"


@pytest.mark.parametrize("batch, expected", [(2, [False, True]), (3, [False, False, True]),
                                             (6, [False] * 4 + [True] * 2), (1, [False])])
def test_a_third_of_each_batch_is_forced_to_tumour(batch, expected):
    assert forced_foreground(batch, 1 / 3) == expected


def test_forced_patches_always_contain_tumour(cache: Path):
    case = open_case(cache, CASES[0])  # cropped 8 x 9 x 7, tumour in a 4 x 4 x 3 block
    rng = np.random.default_rng(0)
    for _ in range(50):
        _, regions = sample_patch(case, (3, 3, 3), rng, foreground=True)
        assert regions[0].any()


def test_patch_larger_than_the_case_is_zero_padded(cache: Path):
    case = open_case(cache, CASES[0])
    image, regions = sample_patch(case, (16, 16, 16), np.random.default_rng(1), foreground=False)
    assert image.shape == (4, 16, 16, 16) and regions.shape == (3, 16, 16, 16)
    np.testing.assert_allclose(np.abs(image).sum(), np.abs(case.image).sum(), rtol=1e-5)  # all of the case is in
    assert np.count_nonzero(image) == np.count_nonzero(case.image)
    assert regions.sum() == (np.asarray(case.seg) > 0).sum() + (np.isin(case.seg, (1, 3))).sum() + (
        np.asarray(case.seg) == 3).sum()


def test_patch_content_is_the_case_at_that_place(cache: Path):
    case = open_case(cache, CASES[1])
    image, regions = sample_patch(case, (4, 5, 3), np.random.default_rng(7), foreground=False)
    matches = [
        (x, y, z) for x in range(case.image.shape[1] - 3) for y in range(case.image.shape[2] - 4)
        for z in range(case.image.shape[3] - 2)
        if np.array_equal(case.image[:, x:x + 4, y:y + 5, z:z + 3], image)
    ]
    assert len(matches) >= 1
    x, y, z = matches[0]
    assert regions[2].sum() == (np.asarray(case.seg[x:x + 4, y:y + 5, z:z + 3]) == 3).sum()


def test_batches_are_reproducible_and_differ_by_rank(cache: Path):
    batches = PatchBatches(cache, CASES, (4, 4, 4), batch_size=3, seed=5)
    first, again = batches.batch(3), batches.batch(3)
    np.testing.assert_array_equal(first[0], again[0])
    assert first[0].shape == (3, 4, 4, 4, 4) and first[1].shape == (3, 3, 4, 4, 4)
    assert (first.spatial == SPATIAL_IDENTITY).all()  # no augmentation asked for
    assert first[1][-1, 0].any()  # the last sample is forced to tumour
    other_rank = PatchBatches(cache, CASES, (4, 4, 4), batch_size=3, seed=5, rank=1).batch(3)
    assert not np.array_equal(first[0], other_rank[0])


def test_loader_workers_deliver_the_same_batches_in_order(cache: Path):
    from transunet3d.training.sampling import patch_loader

    batches = PatchBatches(cache, CASES, (4, 4, 4), batch_size=2, seed=9, augment=AugmentConfig(rotation_p=0.5))
    loaded = list(patch_loader(batches, first=5, count=4, workers=2))
    assert len(loaded) == 4
    for offset, delivered in enumerate(loaded):
        for array, expected in zip(delivered, batches.batch(5 + offset)):
            np.testing.assert_array_equal(array.numpy(), expected)


def test_augmented_batches_read_what_their_transforms_reach_around_the_placed_patch(cache: Path):
    placed = PatchBatches(cache, CASES, (3, 3, 3), batch_size=3, seed=5)
    config = AugmentConfig(rotation_p=0.3, scale_p=0.0)
    enlarged = PatchBatches(cache, CASES, (3, 3, 3), batch_size=3, seed=5, augment=config)
    sizes = set()
    for index in range(40):
        images, regions, spatial = enlarged.batch(index)
        read = read_size((3, 3, 3), spatial)
        sizes.add(read)
        assert (read == (3, 3, 3)) == (spatial == SPATIAL_IDENTITY).all()
        assert images.shape == (3, 4, *read) and regions.shape == (3, 3, *read)
        centre = (slice(None), slice(None), *(slice((n - 3) // 2, (n - 3) // 2 + 3) for n in read))
        expected_images, expected_regions, _ = placed.batch(index)
        np.testing.assert_array_equal(images[centre], expected_images)
        np.testing.assert_array_equal(regions[centre], expected_regions)
        # The tumour block lies inside the case, so the forced patch is centred on a tumour voxel.
        assert regions[(-1, 0, *((n - 1) // 2 for n in read))] == 1
        np.testing.assert_array_equal(enlarged.batch(index).images, images)
    assert (3, 3, 3) in sizes and len(sizes) >= 2  # batches without transforms read the patch, others more
    case = open_case(cache, CASES[0])
    image, _ = sample_patch(case, (3, 3, 3), np.random.default_rng(2), foreground=False, read=(21, 21, 21))
    assert np.count_nonzero(image) == np.count_nonzero(case.image)  # the whole 8 x 9 x 7 case, zeros around it


def test_lesion_sampling_centres_a_small_lesion_as_often_as_a_large_one():
    """One 1000-voxel lesion and one of 2 voxels: voxel sampling (nnU-Net) almost never centres the small one,
    lesion sampling centres it on about half of the tumour-centred patches."""
    seg = np.zeros((30, 30, 30), dtype=np.uint8)
    seg[2:12, 2:12, 2:12] = 3
    seg[25, 25, 25:27] = 3
    case = CachedCase("case", np.zeros((4, 30, 30, 30), np.float32), seg, foreground_properties(seg, 10000, 0))
    small = {(25, 25, 25), (25, 25, 26)}

    def small_share(fraction: float) -> float:
        rng = np.random.default_rng(3)
        centres = [tuple(foreground_centre(case, rng, fraction)) for _ in range(2000)]
        return sum(centre in small for centre in centres) / len(centres)

    assert small_share(0.0) < 0.01
    assert 0.45 < small_share(1.0) < 0.55
    assert 0.2 < small_share(0.5) < 0.3


def test_lesion_locations_are_per_lesion_and_inside_it():
    from transunet3d.data.preprocess import LESION_SAMPLES

    seg = np.zeros((20, 20, 20), dtype=np.uint8)
    seg[1:9, 1:9, 1:9] = 2  # edema with a core
    seg[3:5, 3:5, 3:5] = 1
    seg[15, 15, 15] = 3  # a separate one-voxel enhancing lesion
    lesions = foreground_properties(seg, 100, 0)["lesion_locations"]
    assert [len(lesions[region]) for region in ("WT", "TC", "ET")] == [2, 2, 1]
    big, tiny = sorted(lesions["WT"], key=len, reverse=True)
    assert len(big) == LESION_SAMPLES and tiny == [[15, 15, 15]]
    assert all(1 <= x < 9 and 1 <= y < 9 and 1 <= z < 9 for x, y, z in big)
    assert sorted(map(len, lesions["TC"])) == [1, 8]


def test_the_2025_scheme_centres_patches_on_the_cavity_as_on_a_tumour_region():
    scheme = label_scheme("brats-mets-2025")
    seg = np.zeros((30, 30, 30), dtype=np.uint8)
    seg[2:8, 2:8, 2:8] = 2  # edema only: WT
    seg[20:26, 20:26, 20:26] = 4  # a cavity: RC
    properties = foreground_properties(seg, 10000, 0, scheme=scheme)
    assert properties["region_voxels"] == {"WT": 216, "TC": 0, "ET": 0, "RC": 216}
    case = CachedCase("case", np.zeros((4, 30, 30, 30), np.float32), seg, properties)
    rng = np.random.default_rng(4)
    in_cavity = [seg[tuple(foreground_centre(case, rng))] == 4 for _ in range(1000)]
    assert 0.45 < np.mean(in_cavity) < 0.55  # WT and RC are the regions present, drawn alike
    _, regions = sample_patch(case, (30, 30, 30), rng, foreground=True, scheme=scheme)  # the whole case
    assert regions.shape == (4, 30, 30, 30)
    np.testing.assert_array_equal(regions, scheme.labels_to_regions(seg))


def _damage(cache: Path, suffix: str, change) -> Path:
    """Rewrite one cache array of the first case with `change` applied to a copy of it."""
    path = cache / f"{CASES[0]}{suffix}.npy"
    array = np.load(path).copy()
    np.save(path, change(array))
    return path


def _nan_at_a_voxel(image: np.ndarray) -> np.ndarray:
    image[0, 5, 5, 5] = np.nan
    return image


def _label_7(seg: np.ndarray) -> np.ndarray:
    seg[5, 5, 5] = 7
    return seg


@pytest.mark.parametrize(("suffix", "change", "problem"), [
    ("", _nan_at_a_voxel, f"values that are not finite in case {CASES[0]}"),
    ("_seg", _label_7, f"label 7 in case {CASES[0]}, which the brats-mets-2023 scheme does not have"),
])
def test_a_damaged_cache_array_stops_the_loader_in_one_line(cache: Path, suffix: str, change, problem: str):
    """A NaN voxel made every training step's loss NaN, all skipped, and the run ended with exit 0 having learned
    nothing; a label of no region trained as background. Raised in a loader process, the error came back with the
    worker's traceback in its message."""
    from transunet3d.errors import UserError
    from transunet3d.training.sampling import patch_loader

    path = _damage(cache, suffix, change)
    whole_case = tuple(int(n) + 8 for n in np.load(path).shape[-3:])  # every patch reads the damaged voxel
    batches = PatchBatches(cache, CASES[:1], whole_case, batch_size=1)
    with pytest.raises(UserError) as raised:
        list(patch_loader(batches, first=0, count=2, workers=1))
    assert str(raised.value) == (f"{path}: damaged in the preprocessed cache ({problem}); remove the case's files "
                                 "and preprocess it again")


def test_a_cached_label_map_of_another_shape_than_its_image_is_named(cache: Path):
    """It broadcast into the patch in a traceback."""
    from transunet3d.errors import UserError

    path = _damage(cache, "_seg", lambda seg: seg[:, :-1])
    with pytest.raises(UserError, match=rf"^{path}: damaged in the preprocessed cache \(shape \(\d+, \d+, \d+\), not "
                                        r"its image's \(\d+, \d+, \d+\)\); remove"):
        open_case(cache, CASES[0])
