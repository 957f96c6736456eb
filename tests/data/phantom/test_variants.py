"""Phantom variants: another axis order is the same image (bitwise, same world positions); another voxel size keeps
the extent and every lesion."""

import json

import nibabel as nib
import numpy as np
import pytest
from click.testing import CliRunner
from scipy import ndimage

from transunet3d.cli.main import cli
from transunet3d.data.orientation import AxisOrder
from transunet3d.data.phantom import PhantomSpec, Variant, apply_variant, generate_phantom
from transunet3d.data.resample import resample_labels

SPEC = PhantomSpec(shape=(64, 72, 56), spacing=(1.0, 1.0, 1.0), lesions=(3, 6), diameter_mm=(4.0, 20.0))


@pytest.fixture(scope="module")
def phantom():
    return generate_phantom(SPEC, seed=5, index=1)


@pytest.mark.parametrize("codes", ["LPS", "PRS", "SAR"])
def test_axis_order_variant_is_the_original_reordered(phantom, codes):
    stored = apply_variant(phantom, Variant(axis_codes=codes))
    affine = np.array(stored.geometry.affine)
    order = AxisOrder.of(affine)
    assert order.codes == codes
    np.testing.assert_array_equal(order.apply(stored.seg), phantom.seg)
    for modality, image in stored.images.items():
        np.testing.assert_array_equal(order.apply(image), phantom.images[modality])
    np.testing.assert_allclose(order.canonical_affine(affine, stored.seg.shape), phantom.geometry.affine, atol=1e-9)
    # Every stored voxel sits where the original voxel it holds sits.
    index = order.undo(np.arange(phantom.seg.size).reshape(phantom.seg.shape))
    voxels = np.stack(np.unravel_index(np.arange(0, index.size, 97), index.shape), axis=1)
    held = np.stack(np.unravel_index(index[tuple(voxels.T)], phantom.seg.shape), axis=1)
    homogeneous = np.ones((len(voxels), 1))
    np.testing.assert_allclose(np.hstack([voxels, homogeneous]) @ affine.T,
                               np.hstack([held, homogeneous]) @ np.array(phantom.geometry.affine).T, atol=1e-9)


def test_resampled_variant_keeps_extent_and_lesions(phantom):
    stored = apply_variant(phantom, Variant(voxel_size=(1.6, 1.6, 2.0)))
    assert stored.seg.shape == (40, 45, 28)
    np.testing.assert_allclose(stored.geometry.zooms, (1.6, 1.6, 2.0))
    affine, original = np.array(stored.geometry.affine), np.array(phantom.geometry.affine)
    # Same field of view: the outer faces of the first and last voxels coincide.
    np.testing.assert_allclose(affine @ [-0.5, -0.5, -0.5, 1], original @ [-0.5, -0.5, -0.5, 1])
    np.testing.assert_allclose(affine @ [*(np.array(stored.seg.shape) - 0.5), 1],
                               original @ [*(np.array(phantom.seg.shape) - 0.5), 1])
    assert all(image.dtype == np.int16 for image in stored.images.values())
    for label in (1, 2, 3):
        assert (ndimage.label(stored.seg == label, np.ones((3, 3, 3)))[1] > 0) == bool((phantom.seg == label).any())
    # Every tumour of >= 10 mm^3 is still there: brought back to the original grid, the variant overlaps each.
    back = resample_labels(stored.seg, phantom.seg.shape, (1.6, 1.6, 2.0), (1.0, 1.0, 1.0))
    tumours = ndimage.label(phantom.seg > 0, np.ones((3, 3, 3)))[0]
    large = np.flatnonzero(np.bincount(tumours.ravel()) >= 10)[1:]
    assert large.size >= 3 and set(large) <= set(np.unique(tumours[back > 0]))


def test_cli_writes_the_variant_and_records_it(tmp_path):
    out = tmp_path / "lps"
    result = CliRunner().invoke(cli, ["phantom", str(out), "--cases", "1", "--shape", "48", "40", "32",
                                      "--spacing", "2", "2", "2", "--lesions", "1", "2", "--axis-order", "lps",
                                      "--resample-to", "3", "3", "3"])
    assert result.exit_code == 0, result.output
    # the size written, on a grid of whole voxels over the same 96 x 80 x 64 mm (it printed the 3 mm asked)
    assert result.output.strip().endswith("(voxel size 3x2.963x3.048 mm (asked 3: the nearest that keeps the field "
                                          "of view), axes LPS)")
    manifest = json.loads((out / "phantoms.json").read_text())
    assert manifest["variant"] == {"voxel_size": [3.0, 3.0, 3.0], "axis_codes": "LPS"}
    image = nib.load(next(out.glob("*/*-seg.nii.gz")))
    assert "".join(nib.aff2axcodes(image.affine)) == "LPS" and image.shape == (32, 27, 21)
    bad = CliRunner().invoke(cli, ["phantom", str(tmp_path / "bad"), "--axis-order", "RRS"])
    assert bad.exit_code == 2 and "axis codes" in bad.output and not (tmp_path / "bad").exists()


def test_a_stored_grid_beyond_the_largest_side_is_refused_before_any_output(tmp_path):
    """--resample-to 0.1 (in range) tried to write 2400x2400x1550 voxels and ran out of memory (a traceback)."""
    result = CliRunner().invoke(cli, ["phantom", str(tmp_path / "fine"), "--resample-to", "0.1", "0.1", "0.1"])
    assert result.exit_code == 2 and result.stderr.splitlines() == [
        "error: voxel size 0.1 x 0.1 x 0.1 mm: the stored grid would be 2400x2400x1550 voxels, more than 1024 along an "
        "axis"]
    assert not (tmp_path / "fine").exists()


def test_cli_writes_an_axis_order_alone(tmp_path):
    result = CliRunner().invoke(cli, ["phantom", str(tmp_path / "ari"), "--cases", "1", "--shape", "48", "40", "32",
                                      "--spacing", "2", "2", "2", "--lesions", "1", "1", "--axis-order", "ARI"])
    assert result.exit_code == 0, result.output
    assert result.output.strip().endswith("(voxel size 2 mm, axes ARI)")
    image = nib.load(next((tmp_path / "ari").glob("*/*-t1c.nii.gz")))
    assert "".join(nib.aff2axcodes(image.affine)) == "ARI" and image.shape == (40, 48, 32)
    # The manifest's world centres locate the lesions in the stored files; its voxel centres are the generated grid's.
    seg = nib.load(next((tmp_path / "ari").glob("*/*-seg.nii.gz")))
    labels = np.asarray(seg.dataobj)
    [lesion] = json.loads((tmp_path / "ari" / "phantoms.json").read_text())["cases"]["BraTS-MET-00001-000"]
    stored = np.rint(np.linalg.inv(seg.affine) @ [*lesion["center_mm"], 1])[:3].astype(int)
    assert labels[tuple(stored)] > 0 and stored.tolist() != lesion["center_voxel"]


def test_a_resampled_variant_keeps_an_exact_zero_background():
    """Like a skull-stripped scan acquired at that voxel size: no halo of small spline values around the brain,
    which preprocessing would take for brain and z-score into a dark rim."""
    spec = PhantomSpec(shape=(48, 40, 32), spacing=(2.0, 2.0, 2.0), lesions=(1, 1))
    original = generate_phantom(spec, seed=3, index=1)
    finer = apply_variant(original, Variant(voxel_size=(1.0, 1.0, 2.0)))
    before = np.abs(np.stack(list(original.images.values())).astype(np.float32))
    after = np.abs(np.stack(list(finer.images.values())).astype(np.float32))
    faint = 0.05 * before.max()
    assert not ((before.max(axis=0) < faint) & (before.max(axis=0) > 0)).any()  # the phantom has no faint brain
    assert not ((after.max(axis=0) < faint) & (after.max(axis=0) > 0)).any()
    brain_mm3 = (after.max(axis=0) > 0).sum() * 2.0, (before.max(axis=0) > 0).sum() * 8.0
    assert abs(brain_mm3[0] - brain_mm3[1]) < 0.01 * brain_mm3[1]


def test_box_weights_average_each_wider_voxel_over_its_extent():
    from transunet3d.data.phantom.variants import _box_weights

    weights = _box_weights(7, 3)  # new voxels of 7/3 old ones: [0, 2.33], [2.33, 4.67], [4.67, 7]
    np.testing.assert_allclose(weights.sum(axis=1), 1.0, rtol=1e-6)
    np.testing.assert_allclose(weights[0], np.array([1, 1, 1 / 3, 0, 0, 0, 0]) * 3 / 7, rtol=1e-6)
    np.testing.assert_allclose(weights[1], np.array([0, 0, 2 / 3, 1, 2 / 3, 0, 0]) * 3 / 7, rtol=1e-6)
    np.testing.assert_allclose(weights.sum(axis=0), 3 / 7, rtol=1e-6)  # every old voxel counted once in all


def test_thick_slices_show_a_thin_lesion_at_partial_volume_contrast():
    """A 1 mm slab of lesion between the centres of 3 mm slices: point sampling would show it nowhere; a 3 mm slice
    holding it averages it with its 2 mm of background, a third of its contrast, and the label keeps it."""
    seg = np.zeros((8, 8, 9), dtype=np.uint8)
    seg[2:6, 2:6, 4] = 3  # the middle third of the second 3 mm slice
    image = np.where(seg > 0, 900, 300).astype(np.int16)
    from transunet3d.data.phantom.variants import _resampled

    images, labels, _ = _resampled(np.stack([image] * 4), seg, np.eye(4), (1.0, 1.0, 3.0))
    assert labels.shape == (8, 8, 3)
    np.testing.assert_array_equal(images[0][3, 3], [300, 500, 300])
    assert set(np.unique(labels[2:6, 2:6, 1])) == {3} and labels.sum() == 16 * 3


def test_a_lesion_kept_at_the_brain_s_edge_is_inside_the_stored_head():
    """A one-voxel lesion at the edge of the brain, in a slice whose voxel is less than half brain: its label is
    kept (no lesion vanishes), so its voxel is head too, with its acquired intensity, not background."""
    seg = np.zeros((8, 8, 9), dtype=np.uint8)
    seg[3, 3, 3] = 3  # one voxel of the second 3 mm slice, at the brain's edge
    image = np.zeros((8, 8, 9), dtype=np.int16)
    image[:, :, :4] = 300  # brain in the first slice and a third of the second
    image[3, 3, 3] = 900
    from transunet3d.data.phantom.variants import _resampled

    images, labels, _ = _resampled(np.stack([image] * 4), seg, np.eye(4), (1.0, 1.0, 3.0))
    assert labels[3, 3, 1] == 3 and labels.sum() == 3
    assert (images[:, 3, 3, 1] == 300).all()  # (900 + 0 + 0) / 3: a third of the voxel is that brain
    assert (images[:, 2, 2, 1] == 0).all()  # a third brain, unlabelled: background


def test_a_refined_axis_is_interpolated_smoothly_however_anisotropic_the_new_voxels():
    """0.6 x 0.6 x 1.9 mm from 1.94 mm refines all three axes; preprocessing would take z, the target's thick
    axis, by nearest neighbour and duplicate slices (80 -> 82: two slices twice, up to 0.97 mm off)."""
    spec = PhantomSpec(shape=(32, 32, 40), spacing=(1.94, 1.94, 1.94), lesions=(1, 1))
    original = generate_phantom(spec, seed=3, index=1)
    finer = apply_variant(original, Variant(voxel_size=(0.6, 0.6, 1.9)))
    t1c = finer.images["t1c"].astype(np.float32)
    assert t1c.shape[2] == 41
    repeated = [k for k in range(40) if np.array_equal(t1c[:, :, k], t1c[:, :, k + 1]) and t1c[:, :, k].any()]
    assert repeated == []


def test_no_voxel_inside_the_head_is_zero_and_units_are_mm(tmp_path):
    spec = PhantomSpec(shape=(48, 40, 32), spacing=(2.0, 2.0, 2.0), lesions=(1, 2))
    finer = apply_variant(generate_phantom(spec, seed=4, index=1), Variant(voxel_size=(1.0, 1.0, 1.0)))
    images = np.stack([finer.images[m] for m in ("t1n", "t1c", "t2w", "t2f")])
    head = images.any(axis=0)
    assert head.any() and (images[:, head] >= 1).all()
    assert finer.geometry.xyzt_units == 2
    result = CliRunner().invoke(cli, ["phantom", str(tmp_path / "s"), "--cases", "1", "--shape", "48", "40", "32",
                                      "--lesions", "1", "1"])
    assert result.exit_code == 0, result.output
    for path in (tmp_path / "s").rglob("*.nii.gz"):
        assert nib.load(path).header.get_xyzt_units()[0] == "mm", path.name
