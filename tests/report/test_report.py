"""report.html: tables, embedded figures (valid PNGs), sections found for runs and evaluations."""

import base64
import io
import json
import re
import shutil
import subprocess
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
from click.testing import CliRunner
from matplotlib.image import imread

from tests.factories import write_case
from transunet3d.cli.main import cli
from transunet3d.config import build_config, save_config
from transunet3d.errors import EXIT_INCOMPLETE
from transunet3d.report import html
from transunet3d.report.figures import focus_point
from transunet3d.training.run_log import RunLog

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def embedded_pngs(page: str) -> list[np.ndarray]:
    blobs = re.findall(r'src="data:image/png;base64,([^"]+)"', page)
    images = []
    for blob in blobs:
        data = base64.b64decode(blob)
        assert data.startswith(PNG_SIGNATURE)
        images.append(imread(io.BytesIO(data), format="png"))
    return images


@pytest.fixture
def evaluated(tmp_path: Path) -> Path:
    """Two cases evaluated against themselves (a perfect prediction) with `transunet3d evaluate`."""
    raw, predictions = tmp_path / "raw", tmp_path / "predictions"
    for index, case in enumerate(("BraTS-MET-00001-000", "BraTS-MET-00002-000")):
        write_case(raw, case, seed=index)
        predictions.mkdir(exist_ok=True)
        shutil.copy(raw / case / f"{case}-seg.nii.gz", predictions / f"{case}.nii.gz")
    out = tmp_path / "evaluation"
    result = CliRunner().invoke(cli, ["evaluate", str(predictions), str(raw), "--out", str(out / "metrics.csv"),
                                      "--summary", str(out / "summary.json"), "--lesions", str(out / "lesions.csv")])
    assert result.exit_code == 0, result.output
    return out


def test_html_escapes_and_formats():
    assert html.table(["a<b"], [[float("nan")], [0.123456], ["x&y"]], digits=3) == (
        "<table><thead><tr><th>a&lt;b</th></tr></thead><tbody><tr><td>&ndash;</td></tr><tr><td>0.123</td></tr>"
        "<tr><td>x&amp;y</td></tr></tbody></table>")


def test_focus_is_the_centre_of_the_largest_reference_lesion():
    reference = np.zeros((20, 20, 20), dtype=np.uint8)
    reference[2:4, 2:4, 2:4] = 3
    reference[10:15, 6:9, 12:19] = 2
    assert focus_point(reference, np.zeros_like(reference)) == (12, 7, 15)
    assert focus_point(np.zeros_like(reference), reference) == (12, 7, 15)
    assert focus_point(np.zeros_like(reference), np.zeros_like(reference)) == (10, 10, 10)


def test_evaluation_report_has_the_scores_tables_and_overlays(evaluated: Path):
    result = CliRunner().invoke(cli, ["report", str(evaluated)])
    assert result.exit_code == 0, result.output
    page = (evaluated / "report.html").read_text()
    assert "Mean lesion-wise Dice over WT, TC and ET: <b>1.0000</b>" in page
    assert page.count("<td>00001-000</td>") >= 3 and "Reference lesions" in page
    overlays = embedded_pngs(page)
    assert len(overlays) == 2  # one per case
    assert all(image.shape[0] > 100 and image.shape[1] > 500 for image in overlays)
    assert "http" not in page.replace("http-equiv", "")  # self-contained: no external resources


def _logged_run(run: Path) -> Path:
    """A model folder with a saved config and three logged epochs, as training leaves it."""
    save_config(build_config("tiny"), run / "config.yaml")
    log = RunLog(run / "log.csv", None, ["epoch", "train_loss", "dice_WT", "ema_dice", "lr", "seconds",
                                         "skipped_steps"])
    for epoch in range(3):
        log.append({"epoch": epoch, "train_loss": 1.0 - 0.2 * epoch, "dice_WT": 0.3 * epoch, "ema_dice": 0.1,
                    "lr": 0.01, "seconds": 1.0, "skipped_steps": 0})
    log.plot(run / "progress.png")
    return run


def test_run_report_has_curves_and_config(tmp_path: Path):
    _logged_run(tmp_path / "run")
    CliRunner().invoke(cli, ["report", str(tmp_path)])
    page = (tmp_path / "report.html").read_text()
    assert "Training run: run" in page and "3 epochs logged" in page and "name: encoder" in page
    assert len(embedded_pngs(page)) == 1


@pytest.mark.parametrize(("damage", "message"), [
    (lambda run: (run / "log.csv").write_text("epoch,train_loss\n0,abc\n"),
     "log.csv: damaged, line 2 has a cell that is not a number, not the numbers the run logged; restore it or "
     "delete it (the curves start again)"),
    (lambda run: (run / "log.csv").write_text("garbage,,,\n"),
     "log.csv: damaged, line 1 has no column 'epoch', not the numbers the run logged; restore it or delete it (the "
     "curves start again)"),
    (lambda run: (run / "log.csv").write_text(""),
     "log.csv: damaged, line 1 has no column 'epoch', not the numbers the run logged; restore it or delete it (the "
     "curves start again)"),
    (lambda run: (run / "config.yaml").write_text("a: [1\n"),
     "config.yaml: not valid YAML (expected ',' or ']', but got '<stream end>' (line 2))"),
    (lambda run: (run.parent / "report.html").mkdir(), "report.html: is a folder; expected the path of a file to "
                                                       "write")])
def test_a_damaged_run_or_a_folder_in_the_way_is_one_error_line(tmp_path: Path, damage, message: str):
    """A damaged log.csv or config.yaml was rendered as it was (exit 0); report.html as a folder was exit 1."""
    run = _logged_run(tmp_path / "run")
    damage(run)
    result = CliRunner().invoke(cli, ["report", str(tmp_path)])
    where = tmp_path if message.startswith("report.html") else run
    assert result.exit_code == 2 and result.stderr.splitlines() == [f"error: {where / message}"]
    assert (tmp_path / "report.html").is_dir() or not (tmp_path / "report.html").exists()


def test_an_empty_lesion_table_is_one_error_line(evaluated: Path):
    """It was read after its file had closed: a traceback."""
    (evaluated / "lesions.csv").write_text("")
    result = CliRunner().invoke(cli, ["report", str(evaluated)])
    assert result.exit_code == 2 and result.stderr.splitlines() == [
        f"error: {evaluated / 'lesions.csv'}: damaged, not a table as transunet3d writes it (no column 'source')"]


def test_a_folder_without_runs_or_evaluations_is_a_user_error(tmp_path: Path):
    result = CliRunner().invoke(cli, ["report", str(tmp_path)])
    assert result.exit_code == 2
    assert "no training run" in result.output and "Traceback" not in result.output


@pytest.mark.skipif(shutil.which("chromium") is None, reason="needs headless Chromium (Debian package chromium)")
def test_chromium_renders_the_images(evaluated: Path, tmp_path: Path):
    """The screenshot of the page shows the overlays: many saturated (label-coloured) pixels."""
    CliRunner().invoke(cli, ["report", str(evaluated)])
    shot = tmp_path / "shot.png"
    subprocess.run(["chromium", "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
                    "--window-size=1280,1400", f"--screenshot={shot}", (evaluated / "report.html").as_uri()],
                   capture_output=True, timeout=120, check=True)
    pixels = imread(shot)[..., :3]
    saturation = pixels.max(axis=-1) - pixels.min(axis=-1)
    assert (saturation > 0.5).mean() > 0.002  # the label colours; the text and tables are grey


def test_a_cavity_is_drawn_in_its_own_colour():
    from transunet3d.report.figures import LABEL_COLORS, overlay_png

    labels = np.zeros((12, 12, 12), dtype=np.uint8)
    labels[3:6, 3:6, 3:6] = 2
    labels[6:9, 3:6, 3:6] = 4
    colours = {tuple(LABEL_COLORS(label / 4)) for label in range(5)}
    assert len(colours) == 5  # background and four labels, each its own colour
    image = imread(io.BytesIO(overlay_png({"t1c": np.ones((12, 12, 12))}, labels, labels, (1, 1, 1), "case")))
    assert (image[..., 2] - image[..., 0] > 0.2).any()  # blue over the grey underlay


def _reordered(source: Path, target: Path) -> None:
    """The label map at `source` stored with its axes as (z, -y, x): the same voxels at the same world positions."""
    image = nib.load(source)
    data = np.asanyarray(image.dataobj)
    permutation = np.zeros((4, 4))
    permutation[0, 2] = permutation[2, 0] = permutation[3, 3] = 1
    permutation[1, 1], permutation[1, 3] = -1, data.shape[1] - 1
    nib.save(nib.Nifti1Image(np.flip(data.transpose(2, 1, 0), axis=1).copy(), image.affine @ permutation), target)


def _evaluate(predictions: Path, references: Path, out: Path, *options: str, code: int = 0) -> Path:
    result = CliRunner().invoke(cli, ["evaluate", str(predictions), str(references), "--out", str(out / "metrics.csv"),
                                      "--summary", str(out / "summary.json"), *options])
    assert result.exit_code == code, result.output
    return out


def _report(folder: Path) -> str:
    result = CliRunner().invoke(cli, ["report", str(folder)])
    assert result.exit_code == 0, result.output
    return (folder / "report.html").read_text()


def test_a_prediction_in_another_axis_order_is_drawn_as_evaluate_reads_it(evaluated: Path, tmp_path: Path):
    """The overlay read it as stored: an IndexError, or (a cube) a transposed picture without a word."""
    case = "BraTS-MET-00001-000"
    reordered = tmp_path / "reordered"
    shutil.copytree(tmp_path / "predictions", reordered)
    _reordered(tmp_path / "predictions" / f"{case}.nii.gz", reordered / f"{case}.nii.gz")
    out = _evaluate(reordered, tmp_path / "raw", tmp_path / "evaluation-reordered")
    expected, found = embedded_pngs(_report(evaluated)), embedded_pngs(_report(out))
    assert len(found) == 2 and all(np.array_equal(a, b) for a, b in zip(expected, found))


def test_a_brats2025_evaluation_with_a_failed_case_is_reported_as_such(evaluated: Path, tmp_path: Path):
    """Its metrics.csv was called damaged (exit 2); a failed case stopped the report, or went unmentioned."""
    flat = tmp_path / "predictions" / "BraTS-MET-00002-000.nii.gz"
    nib.save(nib.Nifti1Image(np.zeros((8, 8), np.uint8), np.eye(4)), flat)
    out = _evaluate(tmp_path / "predictions", tmp_path / "raw", tmp_path / "evaluation-2025", "--rules", "brats2025",
                    code=EXIT_INCOMPLETE)
    page = _report(out)
    assert "1 cases scored with the BraTS 2025 metrics" in page and "<th>lesion-wise NSD</th>" in page
    assert "<b>1 case(s) failed</b>" in page and "<li>00002-000: " in page
    assert len(embedded_pngs(page)) == 1  # the failed case is not drawn


def test_a_moved_evaluation_draws_the_folders_inside_it_and_notes_those_gone(tmp_path: Path):
    for index, case in enumerate(("BraTS-MET-00001-000", "BraTS-MET-00002-000")):
        write_case(tmp_path / "old" / "references", case, seed=index)
        (tmp_path / "old" / "predictions").mkdir(exist_ok=True)
        shutil.copy(tmp_path / "old" / "references" / case / f"{case}-seg.nii.gz",
                    tmp_path / "old" / "predictions" / f"{case}.nii.gz")
    _evaluate(tmp_path / "old" / "predictions", tmp_path / "old" / "references", tmp_path / "old")
    shutil.move(tmp_path / "old", tmp_path / "new")
    assert len(embedded_pngs(_report(tmp_path / "new"))) == 2
    shutil.move(tmp_path / "new" / "metrics.csv", tmp_path / "metrics.csv")
    shutil.move(tmp_path / "new" / "summary.json", tmp_path / "summary.json")  # the folders are now elsewhere
    (tmp_path / "summary.json").write_text((tmp_path / "summary.json").read_text().replace("/old", "/gone"))
    page = _report(tmp_path)
    assert "No overlays: the folders the evaluation read" in page and "are no longer there" in page


def test_a_postprocessing_file_with_settings_alone_is_shown_and_one_without_is_damaged(evaluated: Path):
    """A file `predict` applies stopped the report with a KeyError."""
    settings = {"thresholds": {"WT": 0.4, "TC": 0.5, "ET": 0.5}, "min_lesion_mm3": {"WT": 0, "TC": 0, "ET": 0},
                "require_core": False}
    (evaluated / "postprocessing.json").write_text(json.dumps({"settings": settings}))
    assert "holds settings without the record of a tuning" in _report(evaluated)
    (evaluated / "postprocessing.json").write_text("{}")
    result = CliRunner().invoke(cli, ["report", str(evaluated)])
    assert result.exit_code == 2 and result.stderr.strip() == (
        f"error: {evaluated / 'postprocessing.json'}: damaged, no settings as `transunet3d tune` writes them")


def test_a_statistic_of_no_value_is_a_dash_like_nan():
    """A BraTS 2025 summary stores the mean over no large lesion as null: the table showed "None"."""
    from transunet3d.report.html import number, table

    assert number(None) == number(float("nan")) == "&ndash;" and number(0.12345) == "0.1235"
    assert "None" not in table(["region", "large F1"], [["RC", None]])
