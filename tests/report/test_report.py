"""report.html: tables, embedded figures (valid PNGs), sections found for runs and evaluations."""

import base64
import io
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from matplotlib.image import imread

from tests.factories import write_case
from transunet3d.cli.main import cli
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


def test_run_report_has_curves_and_config(tmp_path: Path):
    run = tmp_path / "run"
    run.mkdir()
    (run / "config.yaml").write_text("model:\n  name: encoder\n")
    log = RunLog(run / "log.csv", None, ["epoch", "train_loss", "dice_WT", "ema_dice", "lr", "seconds",
                                         "skipped_steps"])
    for epoch in range(3):
        log.append({"epoch": epoch, "train_loss": 1.0 - 0.2 * epoch, "dice_WT": 0.3 * epoch, "ema_dice": 0.1,
                    "lr": 0.01, "seconds": 1.0, "skipped_steps": 0})
    log.plot(run / "progress.png")
    CliRunner().invoke(cli, ["report", str(tmp_path)])
    page = (tmp_path / "report.html").read_text()
    assert "Training run: run" in page and "3 epochs logged" in page and "name: encoder" in page
    assert len(embedded_pngs(page)) == 1


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
