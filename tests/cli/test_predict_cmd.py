"""`transunet3d predict` on phantoms: submissions in the input's exact geometry, options, failures, sharding."""

import hashlib
import json
import os
import re
from pathlib import Path

import cc3d
import nibabel as nib
import numpy as np
import pytest
from click.testing import CliRunner
from safetensors.torch import load_file

from tests.factories import SMALL_PATCHES, write_run
from tests.inference.test_trained_and_ensemble import poison_weights
from transunet3d.cli import predict_cmd
from transunet3d.cli.main import cli
from transunet3d.config import InferConfig
from transunet3d.data.phantom import PhantomSpec, write_phantoms
from transunet3d.data.preprocess import preprocess_dataset
from transunet3d.data.splits import write_splits
from transunet3d.errors import EXIT_INCOMPLETE
from transunet3d.inference.window_batch import WindowBatch
from transunet3d.runs.folds import draw_folds

CASES = ("BraTS-MET-00001-000", "BraTS-MET-00002-000")
KINDS = ("t1n", "t1c", "t2w", "t2f", "seg")


def oblique_affine() -> np.ndarray:
    """20 degrees about z, anisotropic voxels (1.2, 0.9, 1.5) mm, and a translation."""
    angle = np.deg2rad(20)
    rotation = np.array([[np.cos(angle), -np.sin(angle), 0], [np.sin(angle), np.cos(angle), 0], [0, 0, 1]])
    affine = np.eye(4)
    affine[:3, :3] = rotation @ np.diag([1.2, 0.9, 1.5])
    affine[:3, 3] = (-80.5, 12.25, -40.0)
    return affine


def reorient_case(folder: Path, affine: np.ndarray) -> None:
    """Give every file of a case `affine` as sform (code 4, MNI) and as qform (code 1, scanner)."""
    for path in folder.glob("*.nii.gz"):
        data = np.asanyarray(nib.load(path).dataobj)
        image = nib.Nifti1Image(data, affine)
        image.set_sform(affine, code=4)
        image.set_qform(affine, code=1)
        nib.save(image, path)


@pytest.fixture(scope="module")
def raw(tmp_path_factory) -> Path:
    """Two phantoms of a non-BraTS shape (70, 82, 58) with an oblique, anisotropic geometry."""
    root = tmp_path_factory.mktemp("predict") / "raw"
    write_phantoms(root, cases=2, seed=21, spec=PhantomSpec(shape=(70, 82, 58), lesions=(2, 3)), progress=False)
    for case in CASES:
        reorient_case(root / case, oblique_affine())
    return root


@pytest.fixture(scope="module")
def run(tmp_path_factory) -> Path:
    return write_run(tmp_path_factory.mktemp("run") / "tiny", seed=4)


def predict(*args: object, env: dict | None = None):
    return CliRunner().invoke(cli, ["predict", *map(str, args)], env=env)


def test_submissions_keep_the_input_geometry_and_follow_the_probabilities(raw: Path, run: Path, tmp_path: Path):
    out = tmp_path / "out"
    result = predict(raw, out, "--model", run, "--tta", "flip+rot", "--step", "0.5", "--batch-windows", "5",
                     "--min-lesion-mm3", "20", "--save-probabilities", "--device", "cpu")
    assert result.exit_code == 0, result.output
    assert "predicted 2, already done 0, failed 0 with 1 model(s), TTA flip+rot" in result.output
    assert sorted(p.name for p in out.iterdir()) == sorted(
        [f"{c}.nii.gz" for c in CASES] + [f"{c}_probabilities.npz" for c in CASES] + ["ensemble.json"])
    record = json.loads((out / "ensemble.json").read_text())
    weights = hashlib.sha256((run / "checkpoints" / "epoch_0020" / "weights.safetensors").read_bytes()).hexdigest()
    assert record["models"] == [{"folder": str(run.resolve()), "fold": None, "checkpoint": "epoch_0020",
                                 "epoch": 20, "weights": weights}]
    assert (record["settings"]["tta"], record["settings"]["min_lesion_mm3"]) == ("flip+rot", 20.0)
    for case in CASES:
        source = nib.load(raw / case / f"{case}-t1c.nii.gz")
        written = nib.load(out / f"{case}.nii.gz")
        assert written.shape == (70, 82, 58) and written.get_data_dtype() == np.uint8
        np.testing.assert_allclose(written.affine, oblique_affine(), atol=1e-6)
        for form in ("qform", "sform"):
            matrix, code = getattr(written, f"get_{form}")(coded=True)
            expected, expected_code = getattr(source, f"get_{form}")(coded=True)
            np.testing.assert_allclose(matrix, expected, atol=1e-6)
            assert code == expected_code
        np.testing.assert_allclose(written.header.get_zooms(), (1.2, 0.9, 1.5), atol=1e-6)
        labels = np.asanyarray(written.dataobj)
        assert set(np.unique(labels)) <= {0, 1, 2, 3}
        saved = np.load(out / f"{case}_probabilities.npz")
        probabilities = saved["probabilities"].astype(np.float32)
        assert probabilities.shape == (3, 70, 82, 58) and list(saved["regions"]) == ["WT", "TC", "ET"]
        assert probabilities.min() >= 0 and probabilities.max() <= 1
        assert (probabilities[0][labels > 0] > 0.499).all()  # every labelled voxel is in the predicted WT
        assert (probabilities[2][labels == 3] > 0.499).all()


def test_continue_skips_finished_cases(raw: Path, run: Path, tmp_path: Path):
    out = tmp_path / "out"
    assert predict(raw / CASES[0], out, "--model", run, "--tta", "none").exit_code == 0  # one case folder
    first = out / f"{CASES[0]}.nii.gz"
    stamp = first.stat().st_mtime_ns
    result = predict(raw, out, "--model", run, "--tta", "none", "--continue")
    assert result.exit_code == 0, result.output
    assert "predicted 1, already done 1, failed 0" in result.output
    assert first.stat().st_mtime_ns == stamp and (out / f"{CASES[1]}.nii.gz").exists()
    first.write_bytes(first.read_bytes()[:300])  # cut short from outside (ours are written atomically)
    again = predict(raw, out, "--model", run, "--tta", "none", "--continue")
    assert again.exit_code == 0 and "predicted 1, already done 1, failed 0" in again.output
    assert f"warning: {first.name}: damaged; predicted again" in again.stderr
    assert nib.load(first).get_fdata().shape == nib.load(out / f"{CASES[1]}.nii.gz").get_fdata().shape


@pytest.mark.parametrize("change", ["cropped", "shifted"])
def test_continue_predicts_again_a_kept_label_map_off_the_inputs_grid(raw: Path, run: Path, tmp_path: Path,
                                                                      change: str):
    """A label map of another version of a case (another crop, another origin) is not this input's answer."""
    out = tmp_path / "out"
    assert predict(raw, out, "--model", run, "--tta", "none").exit_code == 0
    first = out / f"{CASES[0]}.nii.gz"
    good = nib.load(first)
    labels, affine = np.asanyarray(good.dataobj), good.affine.copy()
    if change == "cropped":
        labels = labels[:-4]
    else:
        affine[:3, 3] += 5.0
    nib.save(nib.Nifti1Image(labels, affine), first)
    result = predict(raw, out, "--model", run, "--tta", "none", "--continue")
    assert result.exit_code == 0, result.output
    assert "predicted 1, already done 1, failed 0" in result.output
    problem = "shape (66, 82, 58) differs from the input's (70, 82, 58)" if change == "cropped" \
        else "affine differs from the input's"
    assert f"warning: {CASES[0]}: {first.name}: {problem}; predicted again" in result.stderr
    again = nib.load(first)
    assert again.shape == good.shape and np.allclose(again.affine, good.affine, atol=1e-6)
    np.testing.assert_array_equal(np.asanyarray(again.dataobj), np.asanyarray(good.dataobj))


@pytest.mark.parametrize("flag", [[], ["--continue"]])
def test_a_case_that_fails_now_loses_its_earlier_prediction(raw: Path, run: Path, tmp_path: Path, flag: list):
    """Kept beside this run's outputs, the label map of the case's earlier, readable version would be scored as
    this run's answer for it; with --continue, the image written after it says it is another version's."""
    cases = tmp_path / "cases"
    for case in CASES:
        (cases / case).mkdir(parents=True)
        for path in (raw / case).iterdir():
            (cases / case / path.name).write_bytes(path.read_bytes())
    out = tmp_path / "out"
    assert predict(cases, out, "--model", run, "--tta", "none", "--save-probabilities").exit_code == 0
    t1c = cases / CASES[0] / f"{CASES[0]}-t1c.nii.gz"
    image = nib.load(t1c)
    data = np.asanyarray(image.dataobj).astype(np.float32)
    data[10, 10, 10] = np.nan
    header = image.header.copy()
    header.set_data_dtype(np.float32)
    nib.save(nib.Nifti1Image(data, image.affine, header), t1c)
    result = predict(cases, out, "--model", run, "--tta", "none", "--save-probabilities", *flag)
    assert result.exit_code == EXIT_INCOMPLETE
    assert "1 voxels are NaN or infinite; its earlier prediction was removed" in result.output
    if flag:
        assert (f"warning: {CASES[0]}: {CASES[0]}.nii.gz: older than {t1c.name}; predicted again"
                in result.stderr)
    assert sorted(p.name for p in out.iterdir()) == sorted(
        [f"{CASES[1]}.nii.gz", f"{CASES[1]}_probabilities.npz", "ensemble.json"])


def test_a_broken_case_is_reported_and_the_others_are_written(raw: Path, run: Path, tmp_path: Path):
    mixed = tmp_path / "mixed"
    (mixed / CASES[0]).mkdir(parents=True)
    for kind in KINDS:
        name = f"{CASES[0]}-{kind}.nii.gz"
        (mixed / CASES[0] / name).write_bytes((raw / CASES[0] / name).read_bytes())
    broken = mixed / "BraTS-MET-00009-000"
    broken.mkdir()
    (broken / "BraTS-MET-00009-000-t1c.nii.gz").write_bytes((raw / CASES[0] / f"{CASES[0]}-t1c.nii.gz").read_bytes())
    result = predict(mixed, tmp_path / "out", "--model", run, "--tta", "none")
    assert result.exit_code == EXIT_INCOMPLETE
    assert "error: BraTS-MET-00009-000" in result.output and "t1n" in result.output
    assert "failed cases (1): BraTS-MET-00009-000" in result.output
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == [f"{CASES[0]}.nii.gz", "ensemble.json"]


def test_cross_validation_folds_and_sharding(raw: Path, tmp_path: Path):
    cv = tmp_path / "cv"
    for fold in (0, 1):
        write_run(cv / f"fold_{fold}", seed=fold)
    both = predict(raw, tmp_path / "both", "--model", cv, "--tta", "none", "--save-probabilities")
    assert "with 2 model(s)" in both.output, both.output
    single = predict(raw, tmp_path / "one", "--model", cv, "--fold", "1", "--tta", "none", "--save-probabilities")
    assert "with 1 model(s)" in single.output, single.output
    shard = predict(raw, tmp_path / "shard", "--model", cv, "--fold", "0", "--tta", "none",
                    env={**os.environ, "RANK": "1", "WORLD_SIZE": "2"})
    assert shard.exit_code == 0, shard.output
    assert shard.output.splitlines()[-1].endswith(f"-> {tmp_path / 'shard'} (RANK 1 of WORLD_SIZE 2: cases 1, 3, ...)")
    assert [p.name for p in (tmp_path / "shard").glob("*.nii.gz")] == [f"{CASES[1]}.nii.gz"]
    assert not (tmp_path / "shard" / "ensemble.json").exists()  # rank 0 writes the record
    fold_zero = predict(raw, tmp_path / "zero", "--model", cv / "fold_0", "--tta", "none", "--save-probabilities")
    assert fold_zero.exit_code == 0
    probability = {name: np.load(tmp_path / name / f"{CASES[0]}_probabilities.npz")["probabilities"]
                   .astype(np.float32) for name in ("both", "one", "zero")}
    np.testing.assert_allclose(probability["both"], (probability["one"] + probability["zero"]) / 2, atol=2e-3)


def _folds_used(out: Path) -> list:
    return [model["fold"] for model in json.loads((out / "ensemble.json").read_text())["models"]]


def test_fold_lists_random_draws_and_the_all_data_model(raw: Path, tmp_path: Path):
    cv = tmp_path / "cv"
    for fold in range(4):
        write_run(cv / f"fold_{fold}", seed=fold)
    write_run(cv / "fold_all", seed=9)
    one_case = tmp_path / "one.txt"
    one_case.write_text(CASES[0])

    def folds_of(name: str, *selection: str, model: Path = cv) -> list:
        result = predict(raw, tmp_path / name, "--model", model, *selection, "--tta", "none", "--case-list", one_case)
        assert result.exit_code == 0, result.output
        return _folds_used(tmp_path / name)

    assert folds_of("default") == [0, 1, 2, 3]  # the cross-validation folds, not the all-data model
    assert folds_of("listed", "--fold", "3,0,all-data") == [3, 0, "all-data"]
    drawn = folds_of("drawn", "--random-folds", "2", "--seed", "7")
    assert drawn == draw_folds([0, 1, 2, 3], 2, 7) and len(set(drawn)) == 2
    assert {tuple(draw_folds([0, 1, 2, 3], 2, seed)) for seed in range(20)} != {tuple(drawn)}  # seeds matter
    both = predict(raw, tmp_path / "both", "--model", cv, "--fold", "1", "--random-folds", "2")
    assert both.exit_code == 2 and "not both" in both.output
    too_many = predict(raw, tmp_path / "many", "--model", cv, "--random-folds", "5")
    assert too_many.exit_code == 2 and "cannot draw 5 of 4" in too_many.output

    only_all = tmp_path / "final"
    write_run(only_all / "fold_all", seed=9)
    assert folds_of("final", model=only_all) == ["all-data"]


def test_continue_refuses_a_folder_that_another_ensemble_began(raw: Path, tmp_path: Path):
    cv = tmp_path / "cv"
    for fold in range(2):
        write_run(cv / f"fold_{fold}", seed=fold)
    out = tmp_path / "out"
    assert predict(raw / CASES[0], out, "--model", cv, "--fold", "0", "--tta", "none").exit_code == 0
    other = predict(raw, out, "--model", cv, "--fold", "1", "--tta", "none", "--continue")
    assert other.exit_code == 2 and "come from other models or settings" in other.output
    assert sorted(p.name for p in out.glob("*.nii.gz")) == [f"{CASES[0]}.nii.gz"]
    same = predict(raw, out, "--model", cv, "--fold", "0", "--tta", "none", "--continue", "--batch-windows", "1")
    assert same.exit_code == 0 and "predicted 1, already done 1" in same.output  # window batches: speed only
    assert _folds_used(out) == [0]


def test_a_moved_run_continues_its_predictions_and_other_weights_in_its_place_do_not(raw: Path, tmp_path: Path):
    """The record named models by folder alone: a run moved or copied with its predictions (a demo folder copied
    elsewhere) was refused as another ensemble, while other weights written into the same folder were not."""
    import shutil

    out = tmp_path / "out"
    write_run(tmp_path / "cv" / "fold_0", seed=0)
    assert predict(raw / CASES[0], out, "--model", tmp_path / "cv", "--tta", "none").exit_code == 0
    moved = shutil.move(tmp_path / "cv", tmp_path / "moved")
    same = predict(raw, out, "--model", moved, "--tta", "none", "--continue")
    assert same.exit_code == 0 and "predicted 1, already done 1" in same.output, same.output
    write_run(tmp_path / "moved" / "fold_0", seed=5)  # retrained in place: other weights, same folder and epoch
    other = predict(raw, out, "--model", moved, "--tta", "none", "--continue")
    assert other.exit_code == 2 and "come from other models or settings" in other.output


def test_a_record_written_before_the_weights_digests_still_matches_its_models(raw: Path, tmp_path: Path):
    """A record without the weights' digests (written before them) kept each model's folder while the new record
    dropped it: the same model in the same folder never matched again, and --continue was refused."""
    import json

    out, run = tmp_path / "out", write_run(tmp_path / "cv" / "fold_0", seed=0).parent
    assert predict(raw / CASES[0], out, "--model", run, "--tta", "none").exit_code == 0
    record = json.loads((out / "ensemble.json").read_text())
    for model in record["models"]:
        del model["weights"]
    (out / "ensemble.json").write_text(json.dumps(record))
    same = predict(raw, out, "--model", run, "--tta", "none", "--continue")
    assert same.exit_code == 0 and "predicted 1, already done 1" in same.output, same.output
    other = predict(raw, out, "--model", run, "--tta", "none", "--continue", "--step", "0.7")
    assert other.exit_code == 2 and "come from other models or settings" in other.output


def test_a_folder_of_another_ensembles_predictions_is_refused_without_continue_too(raw: Path, tmp_path: Path):
    """Predicting one case with fold 1 into fold 0's folder replaced that case and left the other beside it, under
    a record naming fold 1 alone: `evaluate` then scored a mix of two models."""
    cv = tmp_path / "cv"
    for fold in range(2):
        write_run(cv / f"fold_{fold}", seed=fold)
    out = tmp_path / "out"
    assert predict(raw, out, "--model", cv, "--fold", "0", "--tta", "none").exit_code == 0
    before = {path.name: path.read_bytes() for path in out.iterdir()}
    other = predict(raw / CASES[0], out, "--model", cv, "--fold", "1", "--tta", "none")
    assert other.exit_code == 2 and other.stderr.splitlines() == [
        f"error: {out}: holds predictions of other models or settings (see {out / 'ensemble.json'}); choose "
        "another folder, or empty this one first"]
    assert {path.name: path.read_bytes() for path in out.iterdir()} == before
    again = predict(raw / CASES[0], out, "--model", cv, "--fold", "0", "--tta", "none")  # the same ensemble: fine
    assert again.exit_code == 0 and _folds_used(out) == [0]


@pytest.mark.parametrize(("make_args", "message"), [
    (lambda raw, run, tmp: [raw, tmp / "o", "--model", tmp], "not a training run"),
    (lambda raw, run, tmp: [raw, tmp / "o", "--model", tmp / "nowhere"], "nowhere: training run does not exist"),
    (lambda raw, run, tmp: [tmp / "nothing", tmp / "o", "--model", run], "path does not exist"),
    (lambda raw, run, tmp: [raw, tmp / "o", "--model", run, "--fold", "3"], "holds one trained model"),
    (lambda raw, run, tmp: [raw, tmp / "o", "--model", run, "--checkpoint", "best"], "checkpoint is missing"),
    (lambda raw, run, tmp: [raw, tmp / "o", "--model", run, "--step", "nan"], "'nan' is not a finite number"),
    (lambda raw, run, tmp: [raw, tmp / "o", "--model", run, "--min-lesion-mm3", "inf"], "'inf' is not a finite"),
    # Predictions written among the cases they were made from (and read as "ignored" files of the dataset).
    (lambda raw, run, tmp: [raw, raw, "--model", run], "raw: is the input folder"),
    (lambda raw, run, tmp: [raw, raw / "out", "--model", run], "raw/out: lies inside the input folder"),
])
def test_user_mistakes_give_one_error_line(raw: Path, run: Path, tmp_path: Path, make_args, message: str):
    result = predict(*make_args(raw, run, tmp_path))
    assert result.exit_code == 2
    assert result.output.count("error:") == 1 and message in result.output
    assert "Traceback" not in result.output


def test_from_a_trained_run_to_scored_submissions(raw: Path, tmp_path: Path):
    """train -> predict -> evaluate with the real commands: the submissions are scored like any prediction."""
    preprocess_dataset(raw, tmp_path / "pre", progress=False)
    write_splits(tmp_path / "pre", folds=2, seed=0)
    trained = CliRunner().invoke(cli, ["train", str(tmp_path / "pre"), "--preset", "tiny", "--out",
                                       str(tmp_path / "run"), "--device", "cpu", "--no-validate",
                                       "--set", "loop.epochs=1",
                                       "--set", "loop.iterations_per_epoch=2", "--set", "loop.val_batches=1",
                                       *SMALL_PATCHES])
    assert trained.exit_code == 0, trained.output
    assert predict(raw, tmp_path / "pred", "--model", tmp_path / "run", "--tta", "flip").exit_code == 0
    scored = CliRunner().invoke(cli, ["evaluate", str(tmp_path / "pred"), str(raw), "--out", str(tmp_path / "m.csv")])
    assert scored.exit_code == 0, scored.output
    assert "2 cases scored" in scored.output


def test_case_list_restricts_the_cases(raw: Path, run: Path, tmp_path: Path):
    listed = tmp_path / "val.txt"
    listed.write_text(f"{CASES[1]}\n\n")
    result = predict(raw, tmp_path / "out", "--model", run, "--tta", "none", "--case-list", listed)
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == [f"{CASES[1]}.nii.gz", "ensemble.json"]
    listed.write_text("BraTS-MET-09999-000\n")
    missing = predict(raw, tmp_path / "out2", "--model", run, "--case-list", listed)
    assert missing.exit_code == 2 and "no case BraTS-MET-09999-000" in missing.output
    assert not (tmp_path / "out2").exists()  # refused before anything is written


@pytest.mark.parametrize(("content", "problem"), [(b"", "names no case"), (b"\n  \n", "names no case"),
                                                  (b"\xea\x00\xff", "is not text")])
def test_a_case_list_that_names_no_case_is_an_error(raw: Path, run: Path, tmp_path: Path, content: bytes,
                                                    problem: str):
    listed = tmp_path / "val.txt"
    listed.write_bytes(content)
    out = tmp_path / "out"
    result = predict(raw, out, "--model", run, "--case-list", listed)
    assert result.exit_code == 2
    assert result.stderr.splitlines()[-1] == (f"error: {listed}: case list {problem} "
                                              "(it should hold one case id per line)")
    assert not out.exists()


def test_weights_that_hold_nan_are_refused_before_anything_is_written(raw: Path, tmp_path: Path):
    diverged = poison_weights(write_run(tmp_path / "diverged"))
    out = tmp_path / "out"
    result = predict(raw, out, "--model", tmp_path / "diverged")
    assert result.exit_code == 2
    assert result.stderr.splitlines()[-1] == (f"error: {diverged}: 2 of {len(load_file(str(diverged)))} tensors "
                                              "hold NaN or infinite values (the training diverged)")
    assert not out.exists()


def test_require_core_leaves_only_whole_tumours_with_a_core(raw: Path, run: Path, tmp_path: Path):
    plain, cored = tmp_path / "plain", tmp_path / "cored"
    assert predict(raw, plain, "--model", run, "--tta", "none").exit_code == 0
    result = predict(raw, cored, "--model", run, "--tta", "none", "--require-core")
    assert result.exit_code == 0, result.output
    dropped = 0
    for case in CASES:
        before = np.asanyarray(nib.load(plain / f"{case}.nii.gz").dataobj)
        after = np.asanyarray(nib.load(cored / f"{case}.nii.gz").dataobj)
        kept = after > 0
        np.testing.assert_array_equal(after[kept], before[kept])  # only removals
        components, count = cc3d.connected_components(kept, connectivity=26, return_N=True)
        with_core = np.unique(components[(after == 1) | (after == 3)])
        assert set(range(1, count + 1)) == set(with_core[with_core > 0])
        dropped += int((before > 0).sum() - kept.sum())
    assert dropped  # the barely trained model predicts coreless edema, so the option had something to drop


def test_a_window_batch_beyond_the_memory_is_a_warning_line_on_stderr(raw: Path, run: Path, tmp_path: Path):
    """The warning was the tail of the summary line on stdout, where scripts that read stderr did not see it."""
    (tmp_path / "cases.txt").write_text(f"{CASES[0]}\n")
    result = predict(raw, tmp_path / "out", "--model", run, "--tta", "none", "--batch-windows", "4",
                     "--max-memory", "0.001", "--case-list", tmp_path / "cases.txt", "--device", "cpu")
    assert result.exit_code == 0, result.output
    assert "warning" not in result.stdout
    (warning,) = [line for line in result.stderr.splitlines() if line.startswith("warning:")]
    assert re.fullmatch(r"warning: batch_windows 4: the windows of a pass need about \d+\.\d\d GB, more than the "
                        r"0\.0 GB there is for them; prediction may run out of memory \(leave it unset to size it "
                        r"from memory\)", warning), warning
    sized = WindowBatch(1, window_bytes=3 * 2**30, budget_bytes=2**30, over_budget=True)
    assert predict_cmd._memory_warning(sized, InferConfig()) == (
        "warning: one window of this model needs about 3.00 GB, more than the 1.0 GB there is for it "
        "(--max-memory, or the memory available); prediction may run out of memory")


def test_a_seed_without_random_folds_warns_and_an_empty_postprocessing_is_refused(raw: Path, run: Path,
                                                                                  tmp_path: Path):
    """--seed did nothing without a word; `--postprocessing ""` was read as the folder '.'."""
    result = predict(raw, tmp_path / "out", "--model", run, "--seed", "7", "--postprocessing", "", "--device", "cpu")
    assert result.exit_code == 2 and not (tmp_path / "out").exists()
    assert [line for line in result.stderr.splitlines() if not line.startswith("memory:")] == [
        "warning: --seed: draws the folds of --random-folds, which is not given; it has no effect",
        "error: --postprocessing: give run, none or a postprocessing.json file, not an empty value"]


def test_a_bad_postprocessing_file_stops_predict_before_its_first_line(raw: Path, run: Path, tmp_path: Path):
    result = predict(raw, tmp_path / "out", "--model", run, "--postprocessing", tmp_path / "none.json",
                     "--device", "cpu")
    assert result.exit_code == 2 and "models:" not in result.stdout and not (tmp_path / "out").exists()
    assert result.stderr.splitlines()[-1] == f"error: {tmp_path / 'none.json'}: no such post-processing file"


def test_the_output_keeps_the_inputs_units_and_singleton_fourth_axis(raw: Path, run: Path, tmp_path: Path):
    """Every prediction lost xyzt_units (10: mm and s, written as 0, unknown), and a case stored as (X, Y, Z, 1)
    was answered with a 3D file."""
    case = tmp_path / "raw" / CASES[0]
    case.mkdir(parents=True)
    for source in (raw / CASES[0]).glob("*.nii.gz"):
        image = nib.load(source)
        stored = nib.Nifti1Image(np.asanyarray(image.dataobj)[..., np.newaxis], None, header=image.header)
        stored.header.set_xyzt_units("mm", "sec")
        stored.header["pixdim"][4] = 2.5
        nib.save(stored, case / source.name)
    result = predict(tmp_path / "raw", tmp_path / "out", "--model", run, "--tta", "none", "--device", "cpu")
    assert result.exit_code == 0, result.output
    source, written = nib.load(case / f"{CASES[0]}-t1c.nii.gz"), nib.load(tmp_path / "out" / f"{CASES[0]}.nii.gz")
    assert written.shape == source.shape and written.shape[3] == 1
    for field in ("xyzt_units", "dim", "pixdim", "qform_code", "sform_code", "srow_x", "srow_y", "srow_z",
                  "quatern_b", "quatern_c", "quatern_d", "qoffset_x", "qoffset_y", "qoffset_z"):
        np.testing.assert_allclose(written.header[field], source.header[field], atol=1e-6, err_msg=field)
