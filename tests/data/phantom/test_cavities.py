"""Phantoms with resection cavities (BraTS 2025 label 4): fluid next to a lesion, inside the brain, tumour kept where
they meet, through variants and the CLI; and without the option, the same phantoms as before cavities existed."""

import json

import nibabel as nib
import numpy as np
import pytest
from click.testing import CliRunner
from scipy import ndimage

from transunet3d.cli.main import cli
from transunet3d.data.phantom import PhantomSpec, Variant, apply_variant, generate_phantom
from transunet3d.data.phantom import generate as generate_module
from transunet3d.data.phantom.anatomy import anatomy_on_grid

# 2 mm voxels over nearly the whole brain: room for cavities, small arrays.
SPEC = PhantomSpec(shape=(72, 80, 64), spacing=(2.0, 2.0, 2.0), lesions=(2, 4), diameter_mm=(6.0, 25.0),
                   cavities=0.6, cavity_diameter_mm=(8.0, 25.0))
OFF = PhantomSpec(shape=SPEC.shape, spacing=SPEC.spacing, lesions=SPEC.lesions, diameter_mm=SPEC.diameter_mm)


@pytest.fixture(scope="module")
def pairs():
    """(with cavities, without) for three cases of one series."""
    return [(generate_phantom(SPEC, seed=2, index=i), generate_phantom(OFF, seed=2, index=i)) for i in (1, 2, 3)]


def test_cavities_are_fluid_next_to_a_lesion_inside_the_brain(pairs):
    anatomy = anatomy_on_grid(SPEC.shape, SPEC.spacing)
    with_cavity = 0
    for phantom, _ in pairs:
        seg = phantom.seg
        assert set(np.unique(seg)) <= {0, 1, 2, 3, 4}
        cavity = seg == 4
        assert bool(cavity.any()) == bool(phantom.cavities)
        if not cavity.any():
            continue
        with_cavity += 1
        assert not np.any(cavity & ~anatomy.brain)
        to_tumour = ndimage.distance_transform_edt(~np.isin(seg, (1, 3)), sampling=SPEC.spacing)
        components, count = ndimage.label(cavity, np.ones((3, 3, 3)))
        for component in range(1, count + 1):
            assert to_tumour[components == component].min() <= 4.0, "a cavity abuts a lesion"
        white_matter = (anatomy.wm > 0.9) & (seg == 0)
        images = phantom.images
        assert images["t2w"][cavity].mean() > 1.5 * images["t2w"][white_matter].mean(), "fluid is bright on T2"
        for modality in ("t1n", "t1c", "t2f"):  # dark on T1 and T1c, suppressed on FLAIR
            assert images[modality][cavity].mean() < 0.7 * images[modality][white_matter].mean()
    assert with_cavity >= 2


def test_cavities_keep_the_lesions_and_take_only_edema_or_background(pairs):
    """Same lesions as without cavities (their own random stream); tumour wins over cavity, cavity over edema, and
    the cavity's edema rim goes only where nothing was."""
    for phantom, plain in pairs:
        assert [lesion.to_dict() for lesion in phantom.lesions] == [lesion.to_dict() for lesion in plain.lesions]
        changed = phantom.seg != plain.seg
        assert set(np.unique(phantom.seg[changed])) <= {2, 4}
        assert set(np.unique(plain.seg[changed])) <= {0, 2}
        assert not np.any(changed & (phantom.seg == 2) & (plain.seg != 0))


def test_same_seed_same_cavities():
    a, b = generate_phantom(SPEC, seed=2, index=2), generate_phantom(SPEC, seed=2, index=2)
    np.testing.assert_array_equal(a.seg, b.seg)
    for modality in a.images:
        np.testing.assert_array_equal(a.images[modality], b.images[modality])
    assert [c.to_dict() for c in a.cavities] == [c.to_dict() for c in b.cavities] != []


def test_without_cavities_the_phantoms_of_before(monkeypatch):
    """Label counts and image sums of one default case, recorded with the generator before cavities existed: a
    stream shifted by one draw would change every scanner scale, so the sums move by far more than the tolerance
    (which only allows for floating-point differences between machines)."""
    phantom = generate_phantom(PhantomSpec(shape=(48, 56, 40), lesions=(2, 4)), seed=0, index=1)
    assert np.bincount(phantom.seg.ravel()).tolist() == [104047, 40, 2919, 514]
    sums = {modality: int(image.astype(np.int64).sum()) for modality, image in phantom.images.items()}
    expected = {"t1n": 16726650, "t1c": 18700554, "t2w": 16693088, "t2f": 22200259}
    assert sums == pytest.approx(expected, rel=1e-5)
    assert phantom.cavities == []

    def never(*args, **kwargs):
        raise AssertionError("the cavity sampler ran with cavities off")

    monkeypatch.setattr(generate_module, "sample_cavities", never)
    generate_phantom(OFF, seed=2, index=1)


@pytest.mark.parametrize("variant", [Variant(voxel_size=(3.0, 3.0, 2.5)), Variant(axis_codes="LPS")])
def test_variants_keep_the_cavities(pairs, variant):
    phantom = next(p for p, _ in pairs if p.cavities)
    stored = apply_variant(phantom, variant)
    assert set(np.unique(stored.seg)) <= {0, 1, 2, 3, 4}
    volume = (stored.seg == 4).sum() * np.prod(stored.geometry.zooms)
    original = (phantom.seg == 4).sum() * np.prod(SPEC.spacing)
    assert volume == pytest.approx(original, rel=0.3)
    for label in (1, 3):  # tumour is still written over the cavity
        assert bool((stored.seg == label).any()) == bool((phantom.seg == label).any())


def test_cli_carves_cavities_and_records_them(tmp_path):
    out = tmp_path / "post"
    result = CliRunner().invoke(cli, ["phantom", str(out), "--cases", "2", "--shape", "48", "56", "40",
                                      "--lesions", "2", "3", "--cavities", "1", "--cavity-diameter", "10", "20"])
    assert result.exit_code == 0, result.output
    manifest = json.loads((out / "phantoms.json").read_text())
    assert manifest["spec"]["cavities"] == 1.0 and manifest["spec"]["cavity_diameter_mm"] == [10.0, 20.0]
    cavities = [lesion["cavity"] for lesions in manifest["cases"].values() for lesion in lesions if "cavity" in lesion]
    assert cavities and all(10.0 * 0.85**2 <= c["diameter_mm"] <= 20.0 for c in cavities)
    labels = set().union(*(np.unique(nib.load(f).get_fdata()) for f in out.glob("*/*-seg.nii.gz")))
    assert 4 in labels and labels <= {0, 1, 2, 3, 4}
    bad = CliRunner().invoke(cli, ["phantom", str(tmp_path / "bad"), "--cavity-diameter", "20", "10"])
    assert bad.exit_code == 2 and not (tmp_path / "bad").exists()
