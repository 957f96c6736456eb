"""Resampling: nnU-Net's target spacing and anisotropy rules, images, label maps that keep their lesions, and
probabilities equal to torch's trilinear interpolation."""

from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from scipy import ndimage

from transunet3d.data.crop import crop, mask_bounds
from transunet3d.data.labels import label_scheme
from transunet3d.data.resample import (
    SLAB_ELEMENTS,
    anisotropic_axis,
    keep_vanished_lesions,
    nearest_sources,
    resample_image,
    resample_labels,
    resample_probabilities,
    resampled_shape,
    slab_rows,
    target_spacing,
)

SCHEME = label_scheme("brats-mets-2023")

LABELMAPS = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "labelmaps"
CONNECTED_26 = np.ones((3, 3, 3), dtype=bool)
SMALLEST_KEPT_MM3 = 10.0


def test_target_spacing_is_the_median_per_axis():
    spacings = [(1.0, 1.0, 1.0), (0.5, 0.5, 1.0), (0.9, 0.9, 1.5), (1.0, 1.0, 3.0)]
    shapes = [(140, 170, 140)] * 4
    assert target_spacing(spacings, shapes) == (0.95, 0.95, 1.25)


def test_thick_slice_dataset_takes_the_10th_percentile_of_its_coarse_axis():
    # Median 5 mm slices, 20 of them against 200 in-plane voxels: the coarse axis takes its 10th percentile.
    spacings = [(0.8, 0.8, 2.0)] * 2 + [(0.8, 0.8, 5.0)] * 8
    shapes = [(200, 200, 20)] * 10
    assert target_spacing(spacings, shapes) == (0.8, 0.8, 2.0)
    # ... but with as many slices as in-plane voxels the median stays.
    assert target_spacing(spacings, [(200, 200, 200)] * 10)[2] == 5.0


def test_the_coarse_axis_never_drops_below_the_others():
    spacings = [(2.0, 2.0, 0.5)] * 2 + [(2.0, 2.0, 7.0)] * 8  # 10th percentile 0.5 mm, finer than in-plane
    assert target_spacing(spacings, [(100, 100, 10)] * 10) == pytest.approx((2.0, 2.0, 2.0 + 1e-5))


def test_resampled_shape_keeps_the_extent():
    assert resampled_shape((240, 240, 155), (1, 1, 1), (0.5, 0.5, 1)) == (480, 480, 155)
    assert resampled_shape((240, 240, 155), (1, 1, 1), (1, 1, 3)) == (240, 240, 52)  # 51.67 rounds up
    assert resampled_shape((256, 256, 106), (0.859, 0.859, 1.5), (1, 1, 1)) == (220, 220, 159)
    assert resampled_shape((1, 4, 4), (1, 1, 1), (5, 1, 1)) == (1, 4, 4)  # at least one voxel
    # nnU-Net's compute_new_shape to the voxel (its operation order): 1.2 / 0.8 * 245 = 367.49999999999994
    assert resampled_shape((245, 100, 100), (1.2, 1, 1), (0.8, 1, 1)) == (367, 100, 100)
    assert resampled_shape((233, 249, 184), (1.19, 1.2, 3.3), (1, 0.8, 1)) == (277, 373, 607)


@pytest.mark.parametrize(("spacing", "target", "axis"), [
    ((1, 1, 1), (1, 1, 3), None),  # exactly 3x is not anisotropic
    ((1, 1, 4), (1, 1, 1), 2),  # the source decides first
    ((1, 1, 1), (0.5, 2.5, 0.5), 1),  # then the target
    ((0.24, 1.25, 1.25), (1, 1, 1), None),  # two coarse axes: none is separate
])
def test_anisotropic_axis(spacing, target, axis):
    assert anisotropic_axis(spacing, target) == axis


def test_unchanged_shape_returns_the_input():
    image = np.zeros((2, 4, 5, 6), dtype=np.float32)
    seg = np.zeros((4, 5, 6), dtype=np.uint8)
    assert resample_image(image, (4, 5, 6), (1, 1, 1), (1, 1, 1)) is image
    assert resample_labels(seg, (4, 5, 6), (1, 1, 1), (1, 1, 1)) is seg


def test_trilinear_is_torch_and_spline_reproduces_a_ramp_within_range():
    rng = np.random.default_rng(0)
    image = rng.normal(size=(2, 9, 8, 7)).astype(np.float32)
    expected = F.interpolate(torch.from_numpy(image)[None], size=(13, 5, 9), mode="trilinear", align_corners=False)
    out = resample_image(image, (13, 5, 9), (1, 1, 1), (0.7, 1.6, 0.8), "trilinear")
    np.testing.assert_allclose(out, expected[0].numpy(), atol=1e-6)
    spline = resample_image(image, (13, 5, 9), (1, 1, 1), (0.7, 1.6, 0.8), "spline")
    assert spline.dtype == np.float32
    assert np.all((spline >= image.min(axis=(1, 2, 3))[:, None, None, None] - 1e-6)
                  & (spline <= image.max(axis=(1, 2, 3))[:, None, None, None] + 1e-6))
    # A cubic spline reproduces a ramp exactly, away from the edges (whose extension decays as 0.27^distance).
    ramp = np.broadcast_to(np.arange(40, dtype=np.float32)[:, None, None], (1, 40, 4, 4)).copy()
    upsampled = resample_image(ramp, (80, 4, 4), (1, 1, 1), (0.5, 1, 1), "spline")
    interior = (np.arange(80)[20:-20] + 0.5) / 2 - 0.5  # the source coordinate of each output voxel
    np.testing.assert_allclose(upsampled[0, 20:-20, 0, 0], interior, atol=1e-4)


@pytest.mark.parametrize("mode", ["spline", "trilinear"])
def test_anisotropic_axis_takes_the_nearest_slice(mode):
    # 4 mm slices to 1 mm, in-plane unchanged: output slice j is input slice floor((j + 0.5) / 4), untouched.
    image = np.random.default_rng(1).normal(size=(1, 6, 5, 3)).astype(np.float32)
    out = resample_image(image, (6, 5, 12), (1, 1, 4), (1, 1, 1), mode)
    np.testing.assert_allclose(out, np.repeat(image, 4, axis=3), atol=1e-5)


def test_the_nearest_slice_at_an_exact_tie_is_nnunet_s():
    """20 slices to 77: output 38 sits at input coordinate (20 / 77) * 38.5 - 0.5 = 9.5, between two slices.
    nnU-Net (scipy's `map_coordinates`, order 0; nnunetv2 2.8.1) takes slice 9, where floor((38 + 0.5) * 20 / 77)
    took 10 in preprocessing and 9 in prediction."""
    sources = nearest_sources(20, 77)
    assert sources[38] == 9
    centres = (20 / 77) * (np.arange(77) + 0.5) - 0.5
    assert np.all(np.abs(sources - centres) <= 0.5 + 1e-9) and np.all(np.diff(sources) >= 0)
    assert (sources[0], sources[-1]) == (0, 19)
    image = np.arange(20, dtype=np.float32)[None, None, None].repeat(2, axis=1)
    assert resample_image(image, (2, 1, 77), (1, 1, 5), (1, 1, 20 * 5 / 77), "trilinear")[0, 0, 0, 38] == 9


def test_image_resampling_matches_nnunet():
    reference = pytest.importorskip("nnunetv2.preprocessing.resampling.default_resampling")
    image = ndimage.gaussian_filter(np.random.default_rng(2).normal(size=(2, 20, 18, 16)), 1.5).astype(np.float32)
    cases = (((31, 27, 10), (1, 1, 1), (0.65, 0.67, 1.6)), ((20, 27, 64), (1, 1, 4), (1, 0.67, 1)))
    for shape, spacing, target in cases:
        ours = resample_image(image, shape, spacing, target, "spline")
        theirs = reference.resample_data_or_seg_to_shape(image, shape, spacing, target, is_seg=False, order=3,
                                                         order_z=0, force_separate_z=None)
        np.testing.assert_allclose(ours, theirs, atol=1e-5)


def _balls(shape, count, seed) -> np.ndarray:
    """`count` lesions at sub-voxel positions 16 voxels apart, 1 mm voxels: an ET ball of 1.3-3 mm radius (9 to
    113 mm^3), NETC inside it when large enough, edema 2 mm around it."""
    rng = np.random.default_rng(seed)
    seg = np.zeros(shape, dtype=np.uint8)
    grid = np.indices(shape, dtype=np.float32)
    cells = np.stack(np.meshgrid(*[np.arange(8, n - 7, 16) for n in shape], indexing="ij"), -1).reshape(-1, 3)
    for cell in cells[:count]:
        centre = cell + rng.uniform(-0.5, 0.5, 3)
        distance = np.sqrt(((grid - centre[:, None, None, None]) ** 2).sum(0))
        radius = rng.uniform(1.3, 3.0)
        seg[distance <= radius + 2] = np.where(seg[distance <= radius + 2] == 0, 2, seg[distance <= radius + 2])
        seg[distance <= radius] = 3
        seg[distance <= radius / 2.5] = 1
    return seg


def _unkept_lesions(before: np.ndarray, after: np.ndarray, voxel_mm3: float) -> list[tuple[str, int]]:
    """(region, volume in mm^3) of every 26-connected lesion of >= 10 mm^3 in `before` that `after` misses: that
    does not touch its one-voxel 18-connected dilation, the BraTS 2023 matching rule (an enhancing shell of one
    coarse voxel comes back on the necrotic voxel it surrounded)."""
    missing = []
    regions = zip(SCHEME.region_names, SCHEME.labels_to_regions(before), SCHEME.labels_to_regions(after))
    for name, region, kept in regions:
        box = mask_bounds(region)
        if box is None:
            continue
        # Only the lesions' box and one voxel around it matter (the whole of a 512x512x176 map took 5 s).
        box = tuple((max(lo - 1, 0), min(hi + 1, n)) for (lo, hi), n in zip(box, region.shape))
        region, kept = crop(region, box), crop(kept, box)
        components, count = ndimage.label(region, CONNECTED_26)
        volumes = np.bincount(components.ravel())[1:] * voxel_mm3
        grown = ndimage.grey_dilation(components, footprint=ndimage.generate_binary_structure(3, 2))
        touched = np.bincount(grown[kept], minlength=count + 1)[1:] > 0
        missing += [(name, float(v)) for v, hit in zip(volumes, touched) if v >= SMALLEST_KEPT_MM3 and not hit]
    return missing


@pytest.mark.parametrize("target", [(0.5, 0.5, 1.0), (1.0, 1.0, 3.0), (1.6, 1.6, 1.0), (1.0, 1.0, 4.0)])
def test_small_lesions_survive_a_round_trip(target):
    for seed in range(3):
        seg = _balls((64, 64, 64), 64, seed)
        spacing = (1.0, 1.0, 1.0)
        there = resample_labels(seg, resampled_shape(seg.shape, spacing, target), spacing, target)
        back = resample_labels(there, seg.shape, target, spacing)
        assert back.shape == seg.shape and set(np.unique(back)) <= {0, 1, 2, 3}
        assert _unkept_lesions(seg, back, 1.0) == []
        for region_before, region_back in zip(SCHEME.labels_to_regions(seg), SCHEME.labels_to_regions(back)):
            assert ndimage.label(region_back, CONNECTED_26)[1] == ndimage.label(region_before, CONNECTED_26)[1]


def test_labels_stay_nested_where_a_thin_rim_surrounds_necrosis():
    seg = np.zeros((24, 24, 24), dtype=np.uint8)
    distance = np.sqrt(((np.indices(seg.shape) - 11.5) ** 2).sum(0))
    seg[distance <= 6] = 3
    seg[distance <= 5] = 1  # a one-voxel enhancing rim
    coarse = resample_labels(seg, (15, 15, 15), (1, 1, 1), (1.6, 1.6, 1.6))
    # ET must survive where a per-label vote would give the rim to necrosis or background.
    assert (coarse == 3).sum() > 0 and (coarse == 1).sum() > 0


def test_the_cavity_is_resampled_as_a_region_of_its_own_and_kept_when_small():
    scheme = label_scheme("brats-mets-2025")
    seg = np.zeros((30, 30, 30), dtype=np.uint8)
    seg[8:16, 8:16, 8:16] = 2
    seg[10:14, 10:14, 10:14] = 3
    seg[10:12, 10:12, 10:12] = 1
    seg[16:20, 8:16, 8:16] = 4  # a cavity against the tumour
    seg[25, 25, 25] = 4  # a one-voxel cavity: 0.125 at the nearest coarse centre, kept by nearest neighbour
    coarse = resample_labels(seg, (15, 15, 15), (1, 1, 1), (2, 2, 2), scheme)
    assert set(np.unique(coarse)) == {0, 1, 2, 3, 4}
    assert ndimage.label(coarse == 4, CONNECTED_26)[1] == 2
    np.testing.assert_array_equal(coarse[4:8, 4:8, 4:8] > 0, True)  # the tumour did not give way to the cavity
    back = resample_labels(coarse, seg.shape, (2, 2, 2), (1, 1, 1), scheme)
    for before, after in zip(scheme.labels_to_regions(seg), scheme.labels_to_regions(back)):
        assert 2 * (before & after).sum() / (before.sum() + after.sum()) > 0.6
        assert ndimage.label(after, CONNECTED_26)[1] == ndimage.label(before, CONNECTED_26)[1]


@pytest.fixture(scope="module")
def real_labelmaps() -> list[Path]:
    """The real label maps; the test fails, not skips, without them (see tests/evaluation/conftest.py)."""
    if not (LABELMAPS / "ref").is_dir():
        pytest.fail(f"{LABELMAPS} is missing: the shared data must sit beside the checkout")
    return sorted((LABELMAPS / "ref").glob("*-seg.nii.gz"))


@pytest.mark.parametrize("target", [(1.0, 1.0, 1.0), (1.0, 1.0, 3.0)])
def test_real_lesions_survive_a_round_trip(real_labelmaps, target):
    for path in real_labelmaps[2:]:  # the two cases with their own voxel sizes (0.86 x 0.86 x 1.5 and 0.5 x 0.5 x 1)
        image = nib.load(path)
        seg = np.asarray(image.dataobj, dtype=np.uint8)
        spacing = tuple(float(z) for z in image.header.get_zooms()[:3])
        there = resample_labels(seg, resampled_shape(seg.shape, spacing, target), spacing, target)
        back = resample_labels(there, seg.shape, target, spacing)
        assert _unkept_lesions(seg, back, float(np.prod(spacing))) == [], path.name


@pytest.mark.parametrize(("source", "shape"), [((3, 9, 8, 7), (13, 5, 9)), ((2, 20, 6, 11), (7, 17, 11))])
@pytest.mark.parametrize("slab_elements", [1, 500, SLAB_ELEMENTS])
def test_probabilities_equal_torch_trilinear(source, shape, slab_elements):
    probabilities = torch.rand(source, generator=torch.Generator().manual_seed(0))
    expected = F.interpolate(probabilities[None], size=shape, mode="trilinear", align_corners=False)[0]
    out = resample_probabilities(probabilities, shape, "cpu", slab_elements=slab_elements)
    assert out.shape == (source[0], *shape) and out.dtype == torch.float32
    torch.testing.assert_close(out, expected, atol=1e-5, rtol=0)


@pytest.mark.parametrize(("source", "shape", "axis"), [((2, 9, 8, 40), (2, 9, 8, 11), 2),  # to 3.6 mm slices
                                                     ((3, 12, 30, 7), (3, 5, 30, 7), 0),  # thick axis first
                                                     ((1, 6, 7, 8), (1, 13, 4, 3), 1)])
def test_the_anisotropic_axis_of_probabilities_is_taken_by_nearest_neighbour(source, shape, axis):
    """nnU-Net's `resample_data_or_seg_to_shape` for probabilities (order 1, order_z 0): linear in the plane, the
    anisotropic axis by nearest neighbour, as preprocessing resamples the image."""
    probabilities = torch.rand(source, generator=torch.Generator().manual_seed(1))
    plane = [n if i == axis else m for i, (n, m) in enumerate(zip(source[1:], shape[1:]))]
    linear = F.interpolate(probabilities[None], size=plane, mode="trilinear", align_corners=False)[0]
    count, size = source[1 + axis], shape[1 + axis]
    nearest = np.minimum(((np.arange(size) + 0.5) * count / size).astype(int), count - 1)  # the voxel centre's
    expected = linear.index_select(1 + axis, torch.from_numpy(nearest))
    out = resample_probabilities(probabilities, shape[1:], "cpu", slab_elements=500, nearest_axis=axis)
    torch.testing.assert_close(out, expected, atol=1e-6, rtol=0)  # whole slices taken, none blended


def _one_voxel_peak(shape: tuple[int, int, int], at: tuple[int, int, int], peak: float) -> np.ndarray:
    """Three regions at 0.1 everywhere, WT and TC with one voxel at `peak` (a core a voxel across), ET flat."""
    probabilities = np.full((3, *shape), 0.1, dtype=np.float32)
    probabilities[(slice(0, 2), *at)] = peak
    return probabilities


@pytest.mark.parametrize("shape", [(20, 20, 15), (19, 23, 14)])  # twice as fine; finer by non-integer factors
def test_a_one_voxel_lesion_above_its_threshold_keeps_its_peak_on_a_finer_grid(shape):
    source = _one_voxel_peak((10, 10, 12), (4, 5, 6), 0.68)
    resampled = resample_probabilities(torch.from_numpy(source), shape).numpy()
    assert resampled[1].max() < 0.6  # trilinear spreads the core below a 0.6 threshold: lost as a whole
    before = resampled.copy()
    keep_vanished_lesions(source, resampled, (0.5, 0.6, 0.5))
    changed = np.argwhere(resampled != before)
    regions = set(changed[:, 0].tolist())
    assert 1 in regions and 2 not in regions  # TC is lost under 0.6 (WT under 0.5 on some grids); ET has no lesion
    assert np.allclose(resampled[tuple(changed.T)], 0.68)  # its own value, by nearest neighbour
    # in each region, exactly the finer voxels whose nearest coarse voxel is the peak
    x, y, z = (nearest_sources(n, m) for n, m in zip((10, 10, 12), shape))
    expected = np.argwhere((x == 4)[:, None, None] & (y == 5)[None, :, None] & (z == 6)[None, None, :])
    assert len(expected) > 0
    for region in regions:
        assert sorted(map(tuple, changed[changed[:, 0] == region, 1:])) == sorted(map(tuple, expected))
    again = resampled.copy()
    keep_vanished_lesions(source, again, (0.5, 0.6, 0.5))
    assert np.array_equal(again, resampled)  # nothing more to restore


def test_a_lesion_thinner_than_the_new_slices_keeps_its_peak_in_the_slab_that_holds_it():
    source = _one_voxel_peak((8, 8, 12), (3, 4, 5), 0.9)
    source[0, 3, 4, 6] = 0.7  # a second, lower voxel of the same lesion in the next slice
    resampled = resample_probabilities(torch.from_numpy(source), (8, 8, 4), nearest_axis=2).numpy()
    assert resampled[0].max() == pytest.approx(0.1)  # 3-voxel slabs take slices 1, 4, 7 and 10: not 5 or 6
    keep_vanished_lesions(source, resampled, (0.5, 0.5, 0.5))
    # slice 5's centre (5.5 of 12) lies in slab 1 (4 to 8 of 12)
    assert resampled[0, 3, 4, 1] == pytest.approx(0.9) and resampled[1, 3, 4, 1] == pytest.approx(0.9)
    assert (resampled > 0.5).sum() == 2  # one voxel per region: the slab holding the peak


def test_nothing_changes_where_every_lesion_is_kept_or_below_its_threshold():
    source = _one_voxel_peak((10, 10, 12), (4, 5, 6), 0.45)  # below every threshold
    source[:, 1:4, 1:4, 1:4] = 0.95  # a lesion three voxels across survives trilinear
    resampled = resample_probabilities(torch.from_numpy(source), (20, 20, 24)).numpy()
    before = resampled.copy()
    keep_vanished_lesions(source, resampled, (0.5, 0.5, 0.5))
    assert np.array_equal(resampled, before)


def test_full_size_slabs_stay_small_next_to_the_output():
    # Three regions of a 240x240x155 grid back to 512x512x300: each slab's temporaries (four arrays of a slab's
    # rows) stay within the budget, which is below 1/8 of the 0.9 GB output; nothing of that size is allocated.
    rows = slab_rows(3, (240, 240, 155), (512, 512, 300))
    assert rows >= 1
    assert 4 * 3 * rows * 512 * 300 <= SLAB_ELEMENTS <= 3 * 512 * 512 * 300 / 8
    assert slab_rows(3, (240, 240, 155), (512, 512, 300), slab_elements=1) == 1  # never less than one row
