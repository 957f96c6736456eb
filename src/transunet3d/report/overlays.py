"""Reference vs prediction overlays of an evaluation's first scored cases, on t1c and FLAIR, for the report.

The label maps are read as `evaluate` reads them (`evaluation.case.read_pair`: a prediction stored in another axis
order is reordered onto the reference's grid), and a case that cannot be drawn gets a note instead of stopping
the report.
"""

from __future__ import annotations

from pathlib import Path

import nibabel as nib
import numpy as np

from transunet3d.data.grid import onto_grid
from transunet3d.data.nifti import load_header_3d, read_data, voxel_size
from transunet3d.errors import InputError
from transunet3d.evaluation.case import read_pair
from transunet3d.evaluation.pairing import CasePair, pair_cases
from transunet3d.evaluation.rules import DEFAULT_RULES, rule_set
from transunet3d.report import html
from transunet3d.report.figures import overlay_png

OVERLAY_CASES = 4
UNDERLAYS = {"t1c": "t1c", "FLAIR": "t2f"}


def overlays(summary: dict, eval_dir: Path) -> str:
    """Reference vs prediction on t1c and FLAIR for the first scored cases, when the evaluation recorded its
    folders; a case that cannot be drawn gets a note, never stops the report."""
    folders = summary.get("folders", {})
    if not folders:
        return "<p class='note'>No overlays: the summary does not name its prediction and reference folders.</p>"
    predictions, references = (_recorded_folder(folders, role, eval_dir) for role in ("predictions", "references"))
    if not (predictions.is_dir() and references.is_dir()):
        return (f"<p class='note'>No overlays: the folders the evaluation read ({html.text(predictions)}, "
                f"{html.text(references)}) are no longer there.</p>")
    failed = summary.get("failed") or {}
    labels = rule_set(summary.get("rules", DEFAULT_RULES)).scheme.labels
    try:
        pairs = pair_cases(predictions, references).pairs
    except InputError as error:
        return f"<p class='note'>No overlays: {html.text(error)}.</p>"
    drawable = [pair for pair in pairs if pair.prediction and pair.case not in failed][:OVERLAY_CASES]
    return "<h3>Reference vs prediction</h3>" + "".join(_overlay(pair, labels) for pair in drawable)


def _recorded_folder(folders: dict, role: str, eval_dir: Path) -> Path:
    """A folder the evaluation recorded; one that lay inside the summary's folder is found there again after the
    folder was moved or copied (a run's validation), so the report draws what lies beside its numbers."""
    recorded = Path(folders[role])
    if "summary" in folders and recorded.is_relative_to(folders["summary"]):
        return eval_dir / recorded.relative_to(folders["summary"])
    return recorded


def _overlay(pair: CasePair, labels: tuple[int, ...]) -> str:
    """One case's figure (the t1c and FLAIR beside its reference), or a note saying why it is not drawn."""
    images = {label: pair.reference.with_name(pair.reference.name.replace("-seg.", f"-{kind}."))
              for label, kind in UNDERLAYS.items()}
    if not all(path.is_file() for path in images.values()):
        return f"<p class='note'>{html.text(pair.case)}: images not found beside the reference.</p>"
    try:
        pred_labels, ref_labels, reference, _ = read_pair(pair, labels)
        volumes = {label: _on_grid_of(reference, pair, path) for label, path in images.items()}
    except InputError as error:
        return f"<p class='note'>{html.text(pair.case)}: not drawn ({html.text(error)}).</p>"
    return html.image(overlay_png(volumes, ref_labels, pred_labels, voxel_size(reference), pair.case), pair.case)


def _on_grid_of(reference: nib.Nifti1Image, pair: CasePair, path: Path) -> np.ndarray:
    """The image at `path` on the reference's grid (stored in another axis order, it is reordered onto it)."""
    header = load_header_3d(path, pair.case)
    return onto_grid(pair.case, path, header, pair.reference, reference)(read_data(header, path, pair.case))
