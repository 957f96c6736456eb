"""`report.html` for any folder: every training run and every evaluation found in it, with their figures.

A training run is a folder with `config.yaml` and `log.csv` (segmentation or MAE pre-training); an evaluation is a
folder with `summary.json` and `metrics.csv` (from `transunet3d evaluate` or the demo). The demo folder holds
both, and so does a folder of real-data runs: the report works the same on all of them.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from transunet3d.config import load_config
from transunet3d.errors import UserError
from transunet3d.evaluation.rules import DEFAULT_RULES, RULE_SETS
from transunet3d.files import atomic_path, prepare_output_files, read_json
from transunet3d.report import html
from transunet3d.report.overlays import overlays
from transunet3d.runs.layout import EvaluationFiles, ModelFolder, RunFolder
from transunet3d.training.run_log import read_log_rows

REPORT_FILE = "report.html"
MAX_DEPTH = 3
LESION_ROWS = 300


@dataclass(frozen=True)
class _Metrics:
    """How the report shows an evaluation of one family of rule sets (`evaluation.rules`).

    Args:
        described: the metrics in words, for the opening sentence.
        region_columns: (heading, key) of the region table, the keys those of a region's summary.
        region_summary: a region's entry of summary.json -> the mapping the region columns are read from.
        case_columns: (heading, column) of the per-case table, the columns those of metrics.csv.
    """

    described: str
    region_columns: tuple[tuple[str, str], ...]
    region_summary: Callable[[dict], dict]
    case_columns: tuple[tuple[str, str], ...]


_METRICS_2023 = _Metrics(
    "the BraTS 2023 lesion-wise metrics (BraTS-MET settings)",
    (("lesion-wise Dice", "mean_lesionwise_dice"), ("lesion-wise HD95 (mm)", "mean_lesionwise_hd95"),
     ("legacy Dice", "mean_legacy_dice"), ("legacy HD95 (mm)", "mean_legacy_hd95"),
     ("TP", "total_num_tp"), ("FP", "total_num_fp"), ("FN", "total_num_fn")),
    lambda region: region,
    (("lesion-wise Dice", "lesionwise_dice"), ("lesion-wise HD95", "lesionwise_hd95"), ("TP", "num_tp"),
     ("FP", "num_fp"), ("FN", "num_fn")))
_METRICS_2025 = _Metrics(
    "the BraTS 2025 metrics (means over cases, as the official evaluation's summary rows)",
    (("lesion-wise DSC", "lesionwise_dsc_mean"), ("lesion-wise NSD", "lesionwise_nsd_mean"),
     ("lesion-wise HD95 (mm)", "lesionwise_hd95_mean"), ("F1, all lesions", "all_instance_f1"),
     ("TP per case", "all_instance_tp"), ("FP per case", "all_instance_fp"), ("FN per case", "all_instance_fn"),
     ("global DSC", "global_dsc")),
    lambda region: region.get("mean") or {},
    (("lesion-wise DSC", "lesionwise_dsc_mean"), ("lesion-wise NSD", "lesionwise_nsd_mean"),
     ("lesion-wise HD95", "lesionwise_hd95_mean"), ("TP", "all_instance_tp"), ("FP", "all_instance_fp"),
     ("FN", "all_instance_fn")))


def _folders(root: Path) -> list[Path]:
    """`root` and its subfolders, up to MAX_DEPTH down, sorted by depth and name."""
    found = []
    for depth in range(MAX_DEPTH + 1):
        found += [folder for folder in sorted(root.glob("/".join(["*"] * depth)) if depth else [root])
                  if folder.is_dir()]
    return found


_TUNING_KEYS = {"regions", "settings", "cases", "tried", "score_before", "score_after"}
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
            rows, header = list(reader), reader.fieldnames or []
    except (UnicodeDecodeError, csv.Error) as error:
        raise UserError(f"{path}: damaged, not a readable CSV table ({error})") from None
    missing = [column for column in columns if column not in header]
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
    rows = read_log_rows(model.log)
    load_config(model.config)  # a damaged one is named, not shown as it is
    parts = [f"<h2>Training run: {html.text(run_dir.relative_to(root) if run_dir != root else run_dir.name)}</h2>"]
    if rows:
        last = rows[-1]
        parts.append(f"<p>{len(rows)} epochs logged; last epoch:</p>")
        parts.append(html.table(list(last), [list(last.values())]))
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
    """Region means, the failed cases, per-case and per-lesion tables, and overlays of a few cases."""
    eval_dir = files.folder
    summary = _read_mapping(files.summary)
    rules = summary.get("rules", DEFAULT_RULES)
    if rules not in RULE_SETS:
        raise UserError(f"{files.summary}: damaged, scored by rules {rules!r}, not one of {', '.join(RULE_SETS)}")
    metrics = _METRICS_2025 if rules == "brats2025" else _METRICS_2023
    name = eval_dir.relative_to(root) if eval_dir != root else eval_dir.name
    regions = {region: metrics.region_summary(values)
               for region, values in summary.get("regions", {}).items() if values}
    rows = [[region, *(values.get(key, float("nan")) for _, key in metrics.region_columns)]
            for region, values in regions.items()]  # the summary's regions, in its order (its label scheme's)
    overall = summary.get("overall", {})
    mean = (f" Mean lesion-wise Dice over {html.text(_listed(list(regions)))}: "
            f"<b>{html.number(overall['mean_lesionwise_dice'])}</b>." if "mean_lesionwise_dice" in overall else "")
    parts = [f"<h2>Evaluation: {html.text(name)}</h2>",
             f"<p>{summary.get('cases_scored', 0)} cases scored with {metrics.described} ({html.text(rules)} "
             f"rules).{mean}</p>", _failed_note(summary.get("failed") or {}),
             html.table(["region", *(heading for heading, _ in metrics.region_columns)], rows)]
    parts.append(overlays(summary, eval_dir))
    columns = tuple(column for _, column in metrics.case_columns)
    per_case = _read_csv(files.metrics, ("case", "region", *columns))
    parts.append("<details><summary>Per case</summary>" + html.table(
        ["case", "region", *(heading for heading, _ in metrics.case_columns)],
        [[r["case"], r["region"], *(_float(r[column]) for column in columns)] for r in per_case])
        + "</details>")
    if files.lesions.is_file():
        parts.append(_lesion_tables(_read_csv(files.lesions, ("source", *_LESION_COLUMNS))))
    return "".join(parts)


def _failed_note(failed: dict) -> str:
    """The cases the evaluation could not score, which none of its numbers include."""
    if not failed:
        return ""
    items = "".join(f"<li>{html.text(case)}: {html.text(error)}</li>" for case, error in sorted(failed.items()))
    return (f"<p class='note'><b>{len(failed)} case(s) failed</b> and are in none of these numbers:</p>"
            f"<ul>{items}</ul>")


def tuning_section(run: RunFolder, root: Path) -> str:
    """The post-processing tuned on the run's out-of-fold predictions: per region before and after, the choice.
    A file with settings alone (written by hand; `predict` applies it) is shown as such."""
    tuned = _read_mapping(run.postprocessing)
    name = run.path.relative_to(root) if run.path != root else run.path.name
    if not isinstance(tuned.get("settings"), dict):
        raise UserError(f"{run.postprocessing}: damaged, no settings as `transunet3d tune` writes them")
    if not set(tuned) >= _TUNING_KEYS:
        return (f"<h2>Post-processing: {html.text(name)}</h2><p>{run.postprocessing.name} holds settings without "
                f"the record of a tuning (written by hand, or by another tool):</p>"
                f"<pre>{html.text(json.dumps(tuned['settings'], indent=1))}</pre>")
    try:
        rows = [[region, values["threshold"], values["min_lesion_mm3"], values["before"], values["after"]]
                for region, values in tuned["regions"].items()]
        core = "dropped" if tuned["settings"]["require_core"] else "kept"
    except (AttributeError, KeyError, TypeError):
        raise UserError(f"{run.postprocessing}: damaged, its regions or settings are not as `transunet3d tune` "
                        "writes them") from None
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
    prepare_output_files(root / REPORT_FILE)  # a folder in its way is a mistake to name, before the work
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
