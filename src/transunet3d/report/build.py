"""`report.html` for any folder: every training run and every evaluation found in it, with their figures.

A training run is a folder with `config.yaml` and `log.csv` (segmentation or MAE pre-training); an evaluation is a
folder with `summary.json` and `metrics.csv` (from `transunet3d evaluate` or the demo). The demo folder holds
both, and so does a folder of real-data runs: the report works the same on all of them.
"""

from __future__ import annotations

import csv
from pathlib import Path

from transunet3d.data.nifti import load_header_3d, read_data, voxel_size
from transunet3d.errors import UserError
from transunet3d.evaluation.pairing import pair_cases
from transunet3d.files import atomic_path, read_json, remove_stale_temporaries
from transunet3d.report import html
from transunet3d.report.figures import overlay_png
from transunet3d.runs.layout import EvaluationFiles, ModelFolder, RunFolder

REPORT_FILE = "report.html"
MAX_DEPTH = 3
OVERLAY_CASES = 4
LESION_ROWS = 300
UNDERLAYS = {"t1c": "t1c", "FLAIR": "t2f"}
_REGION_COLUMNS = [("lesion-wise Dice", "mean_lesionwise_dice"), ("lesion-wise HD95 (mm)", "mean_lesionwise_hd95"),
                   ("legacy Dice", "mean_legacy_dice"), ("legacy HD95 (mm)", "mean_legacy_hd95"),
                   ("TP", "total_num_tp"), ("FP", "total_num_fp"), ("FN", "total_num_fn")]


def _folders(root: Path) -> list[Path]:
    """`root` and its subfolders, up to MAX_DEPTH down, sorted by depth and name."""
    found = []
    for depth in range(MAX_DEPTH + 1):
        found += [folder for folder in sorted(root.glob("/".join(["*"] * depth)) if depth else [root])
                  if folder.is_dir()]
    return found


_METRICS_COLUMNS = ("case", "region", "lesionwise_dice", "lesionwise_hd95", "num_tp", "num_fp", "num_fn")
_LESION_COLUMNS = ("case", "region", "lesion_id", "volume_mm3", "longest_axial_diameter_mm", "matched", "lesion_dice")


def _read_mapping(path: Path) -> dict:
    """A JSON object the package wrote into the folder; a damaged or foreign file is a UserError naming it."""
    content = read_json(path)
    if not isinstance(content, dict):
        raise UserError(f"{path}: damaged, not a JSON object as transunet3d writes it")
    return content


def _read_csv(path: Path, columns: tuple[str, ...] = ()) -> list[dict[str, str]]:
    """The rows of a CSV table the package wrote, which must have `columns` and a cell under every header; a
    damaged or foreign file is a UserError naming it."""
    try:
        with path.open(newline="") as file:
            reader = csv.DictReader(file)
            rows = list(reader)
    except (UnicodeDecodeError, csv.Error) as error:
        raise UserError(f"{path}: damaged, not a readable CSV table ({error})") from None
    missing = [column for column in columns if column not in (reader.fieldnames or [])]
    if missing:
        raise UserError(f"{path}: damaged, not a table as transunet3d writes it (no column {missing[0]!r})")
    for line, row in enumerate(rows, start=2):
        if None in row or None in row.values():
            raise UserError(f"{path}: damaged, line {line} has {'more' if None in row else 'fewer'} cells than "
                            "the header")
    return rows


def run_section(model: ModelFolder, root: Path) -> str:
    """Curves, last epoch, (MAE reconstruction), and the resolved config of one trained model."""
    run_dir = model.path
    rows = _read_csv(model.log)
    parts = [f"<h2>Training run: {html.text(run_dir.relative_to(root) if run_dir != root else run_dir.name)}</h2>"]
    if rows:
        last = rows[-1]
        parts.append(f"<p>{len(rows)} epochs logged; last epoch:</p>")
        parts.append(html.table(list(last), [[_float(v) for v in last.values()]]))
    if model.progress.is_file():
        parts.append(html.image(model.progress.read_bytes(), "training curves"))
    if model.reconstruction.is_file():
        parts.append("<p>MAE reconstruction of a validation crop (input, masked input, reconstruction):</p>")
        parts.append(html.image(model.reconstruction.read_bytes(), "MAE reconstruction"))
    if model.init_encoder.is_file():
        source = _read_mapping(model.init_encoder)
        parts.append(f"<p class='note'>ViT initialised from {html.text(source['source'])} "
                     f"({len(source['tensors'])} tensors).</p>")
    parts.append(f"<details><summary>{model.config.name}</summary><pre>{html.text(model.config.read_text())}"
                 "</pre></details>")
    return "".join(parts)


def evaluation_section(files: EvaluationFiles, root: Path) -> str:
    """Region means, per-case and per-lesion tables, and overlays of a few cases."""
    eval_dir = files.folder
    summary = _read_mapping(files.summary)
    name = eval_dir.relative_to(root) if eval_dir != root else eval_dir.name
    regions = {region: values for region, values in summary.get("regions", {}).items() if values}
    rows = [[region, *(values.get(key, float("nan")) for _, key in _REGION_COLUMNS)]
            for region, values in regions.items()]  # the summary's regions, in its order (its label scheme's)
    overall = summary.get("overall", {})
    parts = [f"<h2>Evaluation: {html.text(name)}</h2>",
             f"<p>{summary.get('cases_scored', 0)} cases scored with the BraTS 2023 lesion-wise metrics "
             f"(BraTS-MET settings). Mean lesion-wise Dice over {html.text(_listed(list(regions)))}: "
             f"<b>{html.number(overall.get('mean_lesionwise_dice', float('nan')))}</b>.</p>",
             html.table(["region", *(label for label, _ in _REGION_COLUMNS)], rows)]
    parts.append(_overlays(summary))
    per_case = _read_csv(files.metrics, _METRICS_COLUMNS)
    parts.append("<details><summary>Per case</summary>" + html.table(
        ["case", "region", "lesion-wise Dice", "lesion-wise HD95", "TP", "FP", "FN"],
        [[r["case"], r["region"], *(_float(r[column]) for column in _METRICS_COLUMNS[2:])] for r in per_case])
        + "</details>")
    if files.lesions.is_file():
        parts.append(_lesion_tables(_read_csv(files.lesions, ("source", *_LESION_COLUMNS))))
    return "".join(parts)


def tuning_section(run: RunFolder, root: Path) -> str:
    """The post-processing tuned on the run's out-of-fold predictions: per region before and after, the choice."""
    tuned = _read_mapping(run.postprocessing)
    name = run.path.relative_to(root) if run.path != root else run.path.name
    rows = [[region, values["threshold"], values["min_lesion_mm3"], values["before"], values["after"]]
            for region, values in tuned["regions"].items()]
    core = "dropped" if tuned["settings"]["require_core"] else "kept"
    return (f"<h2>Post-processing tuned on cross-validation: {html.text(name)}</h2>"
            f"<p>{tuned['cases']} out-of-fold cases, {len(tuned['tried'])} settings scored. Mean lesion-wise Dice "
            f"<b>{html.number(tuned['score_before'])}</b> with the default (threshold 0.5, no minimum size) and "
            f"<b>{html.number(tuned['score_after'])}</b> with the chosen settings; whole-tumour components without "
            f"a core are {core}.{_held_out_sentence(tuned)}</p>"
            + html.table(["region", "threshold", "minimum lesion (mm^3)", "lesion-wise Dice before", "after"], rows))


def _held_out_sentence(tuned: dict) -> str:
    """The held-out score of a tuning, where the file has one (files of earlier versions do not)."""
    held_out = tuned.get("score_held_out")
    if held_out is None:
        return ""
    return (f" Each case scored with the settings tuned on the other cases: <b>{html.number(held_out)}</b>, what "
            f"the tuning is worth on new cases (the chosen settings' own score flatters them).")


def _lesion_tables(lesions: list[dict[str, str]]) -> str:
    """Reference lesions with their match and Dice; the predicted components folded away below."""
    columns = _LESION_COLUMNS
    parts = []
    for source, title in (("ref", "Reference lesions"), ("pred", "Predicted components")):
        rows = [row for row in lesions if row["source"] == source]
        shown = html.table(columns, [[_float(row[c]) for c in columns] for row in rows[:LESION_ROWS]], 2)
        note = (f"<p class='note'>First {LESION_ROWS} of {len(rows)}; all are in lesions.csv.</p>"
                if len(rows) > LESION_ROWS else "")
        if source == "ref":
            parts.append(f"<h3>{title} ({len(rows)})</h3>{note}{shown}")
        else:
            parts.append(f"<details><summary>{title} ({len(rows)}, unmatched ones are false positives)</summary>"
                         f"{note}{shown}</details>")
    return "".join(parts)


def _overlays(summary: dict) -> str:
    """Reference vs prediction on t1c and FLAIR for the first cases, when the evaluation recorded its folders."""
    folders = summary.get("folders", {})
    if not folders:
        return "<p class='note'>No overlays: the summary does not name its prediction and reference folders.</p>"
    pairs = [p for p in pair_cases(folders["predictions"], folders["references"]).pairs if p.prediction][:OVERLAY_CASES]
    parts = ["<h3>Reference vs prediction</h3>"]
    for pair in pairs:
        images = {label: pair.reference.with_name(pair.reference.name.replace("-seg.", f"-{kind}."))
                  for label, kind in UNDERLAYS.items()}
        if not all(path.is_file() for path in images.values()):
            parts.append(f"<p class='note'>{html.text(pair.case)}: images not found beside the reference.</p>")
            continue
        reference = load_header_3d(pair.reference, pair.case)
        volumes = {label: read_data(load_header_3d(path, pair.case), path, pair.case) for label, path in images.items()}
        ref_labels = read_data(reference, pair.reference, pair.case)
        pred_labels = read_data(load_header_3d(pair.prediction, pair.case), pair.prediction, pair.case)
        spacing = voxel_size(reference)
        parts.append(html.image(overlay_png(volumes, ref_labels, pred_labels, spacing, pair.case), pair.case))
    return "".join(parts)


def _listed(names: list[str]) -> str:
    """Names in words: "WT, TC and ET"."""
    return " and ".join([", ".join(names[:-1]), names[-1]]) if len(names) > 1 else "".join(names)


def _float(value: str) -> object:
    """A CSV cell as int or float when it is a number, else as the text."""
    for kind in (int, float):
        try:
            return kind(value)
        except ValueError:
            pass
    return value


def write_report(folder: str | Path, title: str | None = None) -> Path:
    """Write `folder`/report.html for every run and evaluation under `folder`; returns its path.

    Raises:
        UserError: the folder holds neither a training run nor an evaluation.
    """
    root = Path(folder)
    if not root.is_dir():
        raise UserError(f"{root}: not a folder")
    remove_stale_temporaries(root)
    folders = _folders(root)
    models = [model for model in map(ModelFolder, folders) if model.is_model() and model.log.is_file()]
    evaluations = [files for files in map(EvaluationFiles, folders) if files.exists()]
    if not models and not evaluations:
        raise UserError(f"{root}: no training run or evaluation found")
    tunings = [run for run in map(RunFolder, folders) if run.postprocessing.is_file()]
    sections = ([evaluation_section(e, root) for e in evaluations] + [tuning_section(t, root) for t in tunings]
                + [run_section(m, root) for m in models])
    page = html.page(title or f"transunet3d report: {root.resolve().name}", sections)
    with atomic_path(root / REPORT_FILE) as tmp:
        tmp.write_text(page, encoding="utf-8")
    return root / REPORT_FILE
