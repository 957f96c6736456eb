"""Canonical axis order: exact round trips, world positions kept, voxel sizes and shapes permuted with the axes."""

import nibabel as nib
import numpy as np
import pytest

from transunet3d.data.orientation import AxisOrder


def _axis_affine(codes: str, zooms=(0.8, 1.2, 2.5), origin=(10.0, -20.0, 30.0)) -> np.ndarray:
    """An affine whose voxel axes point along the world directions named by `codes`."""
    directions = {"R": (0, 1), "L": (0, -1), "A": (1, 1), "P": (1, -1), "S": (2, 1), "I": (2, -1)}
    affine = np.eye(4)
    affine[:3, :3] = 0
    for file_axis, code in enumerate(codes):
        world_axis, sign = directions[code]
        affine[world_axis, file_axis] = sign * zooms[file_axis]
    affine[:3, 3] = origin
    return affine


def _rotation(degrees: float, axis: int) -> np.ndarray:
    angle = np.deg2rad(degrees)
    c, s = np.cos(angle), np.sin(angle)
    plane = [a for a in range(3) if a != axis]
    rotation = np.eye(4)
    rotation[np.ix_(plane, plane)] = [[c, -s], [s, c]]
    return rotation


AFFINES = {
    "RAS": _axis_affine("RAS"),
    "LPS": _axis_affine("LPS"),
    "PRS": _axis_affine("PRS"),
    "SAR": _axis_affine("SAR"),
    "ILA": _axis_affine("ILA"),
    "oblique LPS": _rotation(20, 2) @ _rotation(-15, 0) @ _axis_affine("LPS"),
    "oblique ASL": _rotation(30, 1) @ _axis_affine("ASL"),
}
SHAPE = (5, 7, 4)


@pytest.mark.parametrize("name", AFFINES)
def test_round_trip_is_exact_for_volumes_and_channels(name):
    order = AxisOrder.of(AFFINES[name])
    rng = np.random.default_rng(0)
    for array in (rng.normal(size=SHAPE).astype(np.float32), rng.integers(0, 4, size=(2, *SHAPE), dtype=np.uint8)):
        canonical = order.apply(array)
        assert canonical.flags.c_contiguous
        assert canonical.shape[-3:] == order.shape(array.shape)
        back = order.undo(canonical)
        assert back.dtype == array.dtype and back.flags.c_contiguous
        np.testing.assert_array_equal(back, array)


@pytest.mark.parametrize("name", AFFINES)
def test_canonical_voxels_keep_their_world_position(name):
    affine = AFFINES[name]
    order = AxisOrder.of(affine)
    index = np.arange(np.prod(SHAPE)).reshape(SHAPE)  # each voxel's value is its flat index in the file
    canonical = order.apply(index)
    canonical_affine = order.canonical_affine(affine, SHAPE)
    for voxel in np.ndindex(canonical.shape):
        file_voxel = np.unravel_index(canonical[voxel], SHAPE)
        np.testing.assert_allclose(canonical_affine @ [*voxel, 1], affine @ [*file_voxel, 1], atol=1e-9)
    assert "".join(nib.aff2axcodes(canonical_affine)) == "RAS"


def test_spacing_and_shape_follow_the_axes():
    order = AxisOrder.of(_axis_affine("SAR", zooms=(3.0, 1.0, 0.5)))
    assert order.spacing((3.0, 1.0, 0.5)) == (0.5, 1.0, 3.0)  # the file's third axis runs left-right
    assert order.shape((30, 20, 10)) == (10, 20, 30)
    zooms = nib.affines.voxel_sizes(order.canonical_affine(_axis_affine("SAR", zooms=(3.0, 1.0, 0.5)), (30, 20, 10)))
    np.testing.assert_allclose(zooms, (0.5, 1.0, 3.0))


def test_ras_file_is_returned_as_is():
    order = AxisOrder.of(_axis_affine("RAS"))
    array = np.zeros(SHAPE, dtype=np.float32)
    assert order.is_canonical
    assert order.apply(array) is array and order.undo(array) is array
    np.testing.assert_array_equal(order.canonical_affine(AFFINES["RAS"], SHAPE), AFFINES["RAS"])


def test_json_round_trip_and_bad_codes():
    order = AxisOrder.of(AFFINES["oblique LPS"])
    assert order.codes == "LPS"
    assert AxisOrder.from_json(order.to_json()) == order
    assert AxisOrder.from_codes("sar") == AxisOrder("SAR")
    for bad in ("RRS", "XYZ", "LP", "LPSA"):
        with pytest.raises(ValueError, match="axis codes"):
            AxisOrder.from_codes(bad)
