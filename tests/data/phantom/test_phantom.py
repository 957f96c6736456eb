"""Phantom generator: determinism, label geometry of every lesion, tissue contrast, BraTS layout."""

import json
from pathlib import Path

import numpy as np
import pytest
from scipy import ndimage

from transunet3d.data.layout import discover_cases
from transunet3d.data.phantom import PhantomSpec, generate_phantom, write_phantoms
from transunet3d.data.phantom.anatomy import anatomy_on_grid
from transunet3d.data.validate import load_case
from transunet3d.errors import UserError

# 1 mm voxels on a reduced field of view: real lesion sizes, small arrays.
SPEC = PhantomSpec(shape=(112, 128, 96), spacing=(1.0, 1.0, 1.0), lesions=(4, 8), diameter_mm=(3.0, 30.0))


@pytest.fixture(scope="module")
def phantoms():
    return [generate_phantom(SPEC, seed=7, index=i) for i in (1, 2, 3)]


def test_same_seed_same_case_other_index_other_case():
    a, b = generate_phantom(SPEC, 3, 1), generate_phantom(SPEC, 3, 1)
    np.testing.assert_array_equal(a.seg, b.seg)
    for modality in a.images:
        np.testing.assert_array_equal(a.images[modality], b.images[modality])
    assert not np.array_equal(a.seg, generate_phantom(SPEC, 3, 2).seg)


def test_lesion_count_and_diameters_in_range(phantoms):
    for phantom in phantoms:
        assert 1 <= len(phantom.lesions) <= 8
        for lesion in phantom.lesions:
            assert 3.0 * 0.85**3 <= lesion.diameter_mm <= 30.0


def _lesion_masks(phantom):
    """Per lesion: voxels within its own reach, in mm from its centre."""
    grid = np.indices(phantom.seg.shape, dtype=np.float32)
    for lesion in phantom.lesions:
        distance = np.sqrt(sum((g - c) ** 2 for g, c in zip(grid, lesion.center)))
        yield lesion, distance


def test_labels_nest_like_metastases(phantoms):
    for phantom in phantoms:
        seg = phantom.seg
        assert set(np.unique(seg)) <= {0, 1, 2, 3}
        brain = phantom.images["t1n"] > 0
        assert not np.any(seg[~brain]), "lesions stay inside the brain"
        netc = seg == 1
        if netc.any():  # necrosis is enclosed by enhancing tumour
            ring = ndimage.binary_dilation(netc) & ~netc & brain
            assert np.mean(seg[ring] == 3) > 0.99
        for lesion, distance in _lesion_masks(phantom):
            radius = lesion.diameter_mm / 2
            assert seg[lesion.center] in (1, 3), "the lesion centre is tumour core"
            core = (seg == 3) | (seg == 1)
            near = distance <= radius * lesion.core.max_factor + 1
            assert core[near].sum() > 0
            if lesion.necrosis_fraction > 0:
                assert np.any(seg[distance <= 1] == 1), "a necrotic lesion has necrosis at its centre"


def test_every_labelled_voxel_belongs_to_a_drawn_lesion(phantoms):
    for phantom in phantoms:
        core_reach = np.zeros(phantom.seg.shape, dtype=bool)
        edema_reach = np.zeros(phantom.seg.shape, dtype=bool)
        for lesion, distance in _lesion_masks(phantom):
            radius = lesion.diameter_mm / 2
            core_reach |= distance <= radius * lesion.core.max_factor + 0.5
            edema_reach |= distance <= radius * lesion.edema_fraction * lesion.edema.max_factor + 0.5
        assert np.all(core_reach[np.isin(phantom.seg, (1, 3))])
        assert np.all(edema_reach[phantom.seg == 2])


def test_edema_surrounds_the_core(phantoms):
    checked = 0
    for phantom in phantoms:
        for lesion, distance in _lesion_masks(phantom):
            own = distance <= lesion.diameter_mm / 2 * lesion.edema_fraction * lesion.edema.max_factor
            edema, core = own & (phantom.seg == 2), own & np.isin(phantom.seg, (1, 3))
            if lesion.edema_fraction > 1.5 and lesion.diameter_mm > 8 and edema.sum() > 50:
                assert distance[edema].mean() > distance[core].mean()
                checked += 1
    assert checked > 0


def test_lesion_volume_matches_its_diameter(phantoms):
    for phantom in phantoms:
        labels, _ = ndimage.label(np.isin(phantom.seg, (1, 3)), structure=np.ones((3, 3, 3)))
        for lesion in phantom.lesions:
            if lesion.diameter_mm < 8:
                continue
            component = labels == labels[lesion.center]
            sphere = np.pi / 6 * lesion.diameter_mm**3
            assert 0.3 * sphere < component.sum() < 2.5 * sphere


def test_tissue_contrast_is_plausible(phantoms):
    phantom = phantoms[0]
    anatomy = anatomy_on_grid(SPEC.shape, SPEC.spacing)
    healthy = phantom.seg == 0
    tissue = {t: (getattr(anatomy, t) > 0.9) & healthy for t in ("csf", "gm", "wm")}

    def mean(modality, mask):
        return phantom.images[modality][mask].mean()

    for modality in ("t1n", "t1c"):
        assert mean(modality, tissue["wm"]) > mean(modality, tissue["gm"]) > mean(modality, tissue["csf"])
    assert mean("t2w", tissue["csf"]) > mean("t2w", tissue["gm"]) > mean("t2w", tissue["wm"])
    assert mean("t2f", tissue["gm"]) > mean("t2f", tissue["wm"]) > mean("t2f", tissue["csf"])
    tumour = {label: np.concatenate([p.seg == label for p in phantoms[:1]]) for label in (2, 3)}
    assert mean("t1c", tumour[3]) > 1.3 * mean("t1c", tissue["wm"]), "enhancing tumour is bright on t1c"
    assert mean("t2f", tumour[2]) > 1.3 * mean("t2f", tissue["gm"]), "edema is bright on FLAIR"
    assert mean("t2w", tumour[2]) > mean("t2w", tissue["gm"])
    for image in phantom.images.values():
        assert image.dtype == np.int16 and np.all(image[~anatomy.brain] == 0) and np.all(image[anatomy.brain] > 0)


def test_written_phantoms_are_valid_brats_cases(tmp_path: Path):
    spec = PhantomSpec(shape=(48, 56, 40), lesions=(1, 3))
    ids = write_phantoms(tmp_path, cases=2, seed=0, spec=spec, progress=False)
    assert ids == ["BraTS-MET-00001-000", "BraTS-MET-00002-000"]
    cases = discover_cases(tmp_path)
    assert [c.case_id for c in cases] == ids
    loaded = load_case(cases[0])
    assert loaded.image.shape == (4, 48, 56, 40) and loaded.seg.max() >= 1
    assert loaded.geometry.zooms == spec.resolved_spacing()
    assert (tmp_path / "phantoms.json").exists()


def test_default_spacing_fits_the_brain_and_is_1mm_at_brats_size():
    assert PhantomSpec().resolved_spacing() == (1.0, 1.0, 1.0)
    small = PhantomSpec(shape=(64, 64, 64)).resolved_spacing()
    anatomy = anatomy_on_grid((64, 64, 64), small)
    assert small[0] > 2.0
    full = anatomy_on_grid((240, 240, 155), (1.0, 1.0, 1.0))
    # The whole brain is on the small grid: its volume in mm^3 matches the full-size one.
    assert anatomy.brain.sum() * small[0] ** 3 == pytest.approx(full.brain.sum(), rel=0.03)


@pytest.mark.parametrize(("options", "problem"), [
    (["--spacing", "20", "1", "1"], "voxel size 20 x 1 x 1 mm: the brain (145 x 181 x 155 mm) would span fewer "
                                    "than 8 voxels along an axis"),
    (["--resample-to", "1e6", "1e6", "1e6"], "voxel size 1e+06 x 1e+06 x 1e+06 mm: the brain"),
    (["--seed", "-1"], "Invalid value for '--seed'"),
    (["--diameter", "3", "1e6"], "Invalid value for '--diameter'"),
    (["--cavity-diameter", "3", "inf"], "Invalid value for '--cavity-diameter'"),
])
def test_settings_that_leave_no_room_for_lesions_are_one_error_before_any_output(tmp_path: Path, options, problem):
    """A 20 mm voxel left no brain voxel to place a lesion in (numpy's traceback), a negative seed reached numpy,
    a lesion of 1 km asked for 39 PiB."""
    from click.testing import CliRunner

    from transunet3d.cli.main import cli

    result = CliRunner().invoke(cli, ["phantom", str(tmp_path / "out"), "--cases", "1", "--shape", "32", "32", "24",
                                      *options])
    assert result.exit_code == 2 and result.stderr.startswith(f"error: {problem}"), result.output
    assert "Traceback" not in result.output and not (tmp_path / "out").exists()


def test_a_series_grows_in_its_folder_and_another_series_or_foreign_case_is_refused(tmp_path: Path):
    """`phantom` into a folder of another series replaced same-id cases and left a manifest describing only the
    new ones; into real data it replaced real cases (phantom ids are real BraTS ids)."""
    spec = PhantomSpec(shape=(32, 32, 24), lesions=(1, 1))
    write_phantoms(tmp_path / "out", cases=1, seed=1, spec=spec, progress=False)
    first = (tmp_path / "out" / "BraTS-MET-00001-000" / "BraTS-MET-00001-000-t1c.nii.gz").read_bytes()
    write_phantoms(tmp_path / "out", cases=1, seed=1, spec=spec, progress=False, first=2)  # the same series grows
    manifest = json.loads((tmp_path / "out" / "phantoms.json").read_text())
    assert sorted(manifest["cases"]) == ["BraTS-MET-00001-000", "BraTS-MET-00002-000"] and manifest["seed"] == 1
    for other in ({"seed": 2, "spec": spec}, {"seed": 1, "spec": PhantomSpec(shape=(32, 32, 32), lesions=(1, 1))}):
        with pytest.raises(UserError, match="holds phantoms of another series"):
            write_phantoms(tmp_path / "out", cases=1, progress=False, **other)
    assert (tmp_path / "out" / "BraTS-MET-00001-000" / "BraTS-MET-00001-000-t1c.nii.gz").read_bytes() == first

    real = tmp_path / "real" / "BraTS-MET-00001-000"
    real.mkdir(parents=True)
    (real / "BraTS-MET-00001-000-t1c.nii.gz").write_bytes(b"real scan")
    with pytest.raises(UserError, match="BraTS-MET-00001-000: exists and is not a phantom of this series"):
        write_phantoms(tmp_path / "real", cases=1, seed=1, spec=spec, progress=False)
    assert (real / "BraTS-MET-00001-000-t1c.nii.gz").read_bytes() == b"real scan"
    write_phantoms(tmp_path / "real", cases=1, seed=1, spec=spec, progress=False, first=2)  # beside it: allowed


def test_a_run_killed_among_its_cases_is_finished_by_its_rerun(tmp_path: Path, monkeypatch):
    """The manifest was written only after the last case: a demo or `phantom` interrupted (Ctrl-C, a kill) while
    writing phantoms left case folders that no manifest recorded, and every rerun refused them."""
    from tests.factories import dead_pid, temporary
    from transunet3d.data.phantom import generate

    spec = PhantomSpec(shape=(32, 32, 24), lesions=(1, 1))
    write_phantoms(tmp_path / "straight", cases=4, seed=1, spec=spec, progress=False)
    make_one, calls = generate._make_one, []

    def killed_at_the_third_case(args):
        calls.append(args)
        if len(calls) == 3:
            (args[3] / "BraTS-MET-00003-000").mkdir()  # its first file half written
            temporary(args[3] / "BraTS-MET-00003-000", "BraTS-MET-00003-000-t1c.nii.gz", dead_pid())
            raise KeyboardInterrupt
        return make_one(args)

    monkeypatch.setattr(generate, "_make_one", killed_at_the_third_case)
    with pytest.raises(KeyboardInterrupt):
        write_phantoms(tmp_path / "out", cases=4, seed=1, spec=spec, progress=False)
    monkeypatch.setattr(generate, "_make_one", make_one)
    write_phantoms(tmp_path / "out", cases=4, seed=1, spec=spec, progress=False)
    files = sorted(path.relative_to(tmp_path / "straight") for path in (tmp_path / "straight").rglob("*"))
    assert sorted(path.relative_to(tmp_path / "out") for path in (tmp_path / "out").rglob("*")) == files
    for name in files:
        straight, rerun = tmp_path / "straight" / name, tmp_path / "out" / name
        assert straight.is_dir() or straight.read_bytes() == rerun.read_bytes(), name


def test_what_a_series_holds_short_of_its_settings_is_a_warning(tmp_path: Path):
    """50 lesions asked, 1 written, and a 16 mm field of view that is three quarters tumour: exit 0 without a
    word. A side of 33000 voxels was a traceback after the volume was generated."""
    from click.testing import CliRunner

    from transunet3d.cli.main import cli

    crowded = CliRunner().invoke(cli, ["phantom", str(tmp_path / "a"), "--cases", "1", "--shape", "48", "48", "48",
                                       "--lesions", "50", "50", "--diameter", "40", "40"])
    assert crowded.exit_code == 0, crowded.output
    written = len(json.loads((tmp_path / "a" / "phantoms.json").read_text())["cases"]["BraTS-MET-00001-000"])
    assert written < 50
    assert "warning: 1 case(s) hold fewer than 50 lesions (no room left for the others): BraTS-MET-00001-000" \
        in crowded.stderr
    assert "lesion(s) shrunk below 40 mm to fit" in crowded.stderr
    cut = CliRunner().invoke(cli, ["phantom", str(tmp_path / "b"), "--cases", "1", "--shape", "16", "16", "16",
                                   "--spacing", "1", "1", "1"])
    assert cut.exit_code == 0 and "warning: field of view 16 x 16 x 16 mm is smaller than the brain (145 x 181 x " \
                                  "155 mm): the cases hold a cut-out of it" in cut.stderr
    fits = CliRunner().invoke(cli, ["phantom", str(tmp_path / "c"), "--cases", "1", "--shape", "64", "64", "64"])
    assert fits.exit_code == 0 and "warning" not in fits.stderr
    huge = CliRunner().invoke(cli, ["phantom", str(tmp_path / "d"), "--shape", "16", "16", "33000"])
    assert huge.exit_code == 2 and "33000 is not in the range 16<=x<=1024" in huge.stderr
    assert not (tmp_path / "d").exists()


def test_case_ids_beyond_five_digits_are_refused_before_anything_is_written(tmp_path: Path):
    """Case 100000 was named BraTS-MET-100000-000, which no reader takes for a case ("no BraTS cases found")."""
    from click.testing import CliRunner

    from transunet3d.cli.main import cli
    from transunet3d.errors import UserError

    with pytest.raises(UserError, match=r"^cases 99999\.\.100000: case ids run from 1 to 99999"):
        write_phantoms(tmp_path / "out", cases=2, seed=1, first=99999, progress=False)
    demo = CliRunner().invoke(cli, ["demo", str(tmp_path / "demo"), "--train-cases", "99990", "--test-cases", "10"])
    assert demo.exit_code == 2 and demo.stderr.splitlines() == [
        "error: --train-cases 99990 and --test-cases 10: together at most 99999 (case ids have five digits, as "
        "BraTS-MET-00001-000)"]
    assert not any(tmp_path.iterdir())
