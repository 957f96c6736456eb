"""Lesion-wise evaluation time per case, one core: ours vs the official code of each rule set.

- `brats2023`: ours vs the official algorithm (official_brats2023.py, a step-by-step re-statement of the BraTS 2023
  challenge code).
- `brats2025`: ours vs the official `brats-evaluation` package itself (mets config, panoptica; a dev dependency),
  both from the files (the package's per-case call, `evaluate_single_exam`) and from arrays already in memory
  (the scoring alone: our `evaluate_labels` vs panoptica's `Panoptica_Evaluator.evaluate` on the arrays as it
  reads them, (z, y, x) with the (x, y, z) spacing). The numbers are compared after the package's own parser
  (`brats-parse-metrics mets --vol_threshold 27 --overlap_threshold 0.2`).

Cases: the four real BraTS-METS label maps in ../shared/data/labelmaps (240x240x155, 256x256x106 anisotropic,
512x512x176) and a generated 240x240x155 phantom case with 40 metastases whose "prediction" misses some lesions,
shifts the others by a voxel and adds false positives (for brats2025 also a resection cavity, label 4), and for
brats2023 the same phantom against an untrained model's prediction (huge false-positive regions). Both
implementations read the files themselves; the script also checks that they agree on every number.

    python benchmarks/bench_evaluate.py [--rules brats2023|brats2025|both] [--skip-official] [--repeats 5]
        [--official-repeats 1]
"""

from __future__ import annotations

import argparse
import functools
import os
import sys
import tempfile
import time
from pathlib import Path

import cc3d
import nibabel as nib
import numpy as np

from transunet3d.data.phantom import PhantomSpec, generate_phantom
from transunet3d.evaluation.case import _read_labels, evaluate_labels, evaluate_pair
from transunet3d.evaluation.pairing import CasePair
from transunet3d.evaluation.rules import rule_set

sys.path.insert(0, str(Path(__file__).parent))
import official_brats2023

LABELMAPS = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "labelmaps"
FIELDS = ["lesionwise_dice", "lesionwise_hd95", "legacy_dice", "legacy_hd95", "sensitivity", "specificity",
          "num_tp", "num_fp", "num_fn", "gt_volume"]


def forty_lesion_phantom():
    """The generated case of both rule sets: 240x240x155, 40 metastases of 3-30 mm, edema merging some."""
    return generate_phantom(PhantomSpec(lesions=(40, 40), diameter_mm=(3.0, 30.0), edema_p=0.3), seed=2023, index=1)


def generated_case(folder: Path, cavity: bool = False) -> tuple[Path, Path]:
    """A full-size phantom with 40 lesions and an imperfect prediction of it; with `cavity`, a resection cavity
    (label 4) that the prediction finds one voxel off."""
    phantom = forty_lesion_phantom()
    ref = phantom.seg
    components = cc3d.connected_components(ref > 0, connectivity=26)
    pred = np.roll(ref, 1, axis=0)
    pred[np.isin(np.roll(components, 1, axis=0), np.arange(1, components.max() + 1, 7))] = 0  # misses
    rng = np.random.default_rng(0)
    for x, y, z in rng.integers(40, 110, size=(5, 3)):
        pred[x:x + 3, y:y + 3, z:z + 2] = 3  # false positives
    if cavity:
        brain = np.argwhere(next(iter(phantom.images.values())) > 0)
        centre = brain[len(brain) // 3]
        grid = np.ogrid[tuple(slice(0, n) for n in ref.shape)]
        ball = sum((g - c) ** 2 for g, c in zip(grid, centre)) <= 12**2
        ref[ball & (ref == 0)] = 4
        pred[np.roll(ball, 1, axis=2) & (pred == 0)] = 4
    affine = np.array(phantom.geometry.affine)
    nib.save(nib.Nifti1Image(ref, affine), folder / "BraTS-MET-99999-000-seg.nii.gz")
    nib.save(nib.Nifti1Image(pred, affine), folder / "BraTS-MET-99999-000.nii.gz")
    return folder / "BraTS-MET-99999-000.nii.gz", folder / "BraTS-MET-99999-000-seg.nii.gz"


def untrained_case(folder: Path) -> tuple[Path, Path]:
    """The 40-lesion phantom against what an untrained model predicts: labels scattered over half the brain in
    large smooth blobs, so that every lesion is matched to huge components (the out-of-fold validation of a run
    stopped early, or a broken model)."""
    from scipy import ndimage

    phantom = forty_lesion_phantom()
    brain = next(iter(phantom.images.values())) > 0
    field = ndimage.gaussian_filter(np.random.default_rng(1).random(phantom.seg.shape), 4)
    levels = np.quantile(field[brain], [0.5, 0.7, 0.85])
    pred = (np.digitize(field, levels) * brain).astype(np.uint8)  # labels 1-3 on the upper half of the field
    affine = np.array(phantom.geometry.affine)
    nib.save(nib.Nifti1Image(phantom.seg, affine), folder / "BraTS-MET-99998-000-seg.nii.gz")
    nib.save(nib.Nifti1Image(pred, affine), folder / "BraTS-MET-99998-000.nii.gz")
    return folder / "BraTS-MET-99998-000.nii.gz", folder / "BraTS-MET-99998-000-seg.nii.gz"


def best_time(function, repeats: int) -> tuple[float, object]:
    best, value = float("inf"), None
    for _ in range(repeats):
        start = time.perf_counter()
        value = function()
        best = min(best, time.perf_counter() - start)
    return best, value


def real_cases() -> dict[str, tuple[Path, Path]]:
    return {f"{c} (real)": (LABELMAPS / "pred" / f"BraTS-MET-{c}.nii.gz",
                            LABELMAPS / "ref" / f"BraTS-MET-{c}-seg.nii.gz")
            for c in ("00132-000", "00217-000", "00630-001", "01325-000")}


def bench_2023(cases: dict[str, tuple[Path, Path]], args) -> None:
    print("| case | shape | lesions (ET ref) | ours (s) | official algorithm (s) | speed-up | numbers agree |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    for name, (pred, ref) in cases.items():
        pair = CasePair(name.split()[0], ref, pred)
        ours_time, ours = best_time(lambda p=pair: evaluate_pair(p), args.repeats)
        shape = "x".join(map(str, nib.load(ref).shape))
        lesions = len(ours.regions["ET"].lesions)
        if args.skip_official:
            print(f"| {name} | {shape} | {lesions} | {ours_time:.2f} | - | - | - |")
            continue
        official_time, official = best_time(lambda p=pred, r=ref: official_brats2023.evaluate_case(p, r), 1)
        agree = all(np.isclose(getattr(ours.regions[r], f), official[r][f], rtol=0, atol=1e-9)
                    for r in official for f in FIELDS)
        print(f"| {name} | {shape} | {lesions} | {ours_time:.2f} | {official_time:.1f} | "
              f"{official_time / ours_time:.0f}x | {'yes' if agree else 'NO'} |")


def bench_2025(cases: dict[str, tuple[Path, Path]], args, tmp: Path) -> None:
    rules = rule_set("brats2025")
    official = None if args.skip_official else OfficialBrats2025()
    print("| case | shape | lesions (ET ref) | ours, files (s) | package, files (s) | speed-up | "
          "ours, arrays (s) | package, arrays (s) | speed-up | numbers agree |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    timings, ours_rows = {}, {}
    for name, (pred_path, ref_path) in cases.items():
        case = name.split()[0]
        pred, header = _read_labels(pred_path, case, rules.scheme.labels)
        ref, _ = _read_labels(ref_path, case, rules.scheme.labels)
        spacing = tuple(float(z) for z in header.header.get_zooms()[:3])
        files_time, result = best_time(
            functools.partial(evaluate_pair, CasePair(case, ref_path, pred_path), rules=rules.name), args.repeats)
        arrays_time, _ = best_time(functools.partial(evaluate_labels, pred, ref, spacing, rules), args.repeats)
        ours_rows[case] = {region: rules.quantities(scores) for region, scores in result.regions.items()}
        timings[name] = (case, "x".join(map(str, ref.shape)), result.regions["ET"].quantities["all_instance_tp"]
                         + result.regions["ET"].quantities["all_instance_fn"], files_time, arrays_time)
        if official is not None:
            timings[name] += official.time_case(case, pred_path, ref_path, pred, ref, spacing, args.official_repeats)
    agreement = official.agreement(ours_rows, tmp) if official is not None else {}
    for name, (case, shape, lesions, files_time, arrays_time, *package) in timings.items():
        if not package:
            print(f"| {name} | {shape} | {lesions} | {files_time:.3f} | - | - | {arrays_time:.3f} | - | - | - |")
            continue
        package_files, package_arrays = package
        print(f"| {name} | {shape} | {lesions} | {files_time:.3f} | {package_files:.2f} | "
              f"{package_files / files_time:.0f}x | {arrays_time:.3f} | {package_arrays:.2f} | "
              f"{package_arrays / arrays_time:.0f}x | {agreement[case]} |")


class OfficialBrats2025:
    """The `brats-evaluation` package (imported only here: a dev dependency), timed per case."""

    def __init__(self):
        import warnings
        from importlib.resources import files

        from brats_evaluation.evaluation import evaluate_single_exam
        from panoptica import Panoptica_Evaluator

        warnings.simplefilter("ignore")  # panoptica warns about float label maps and its NSD default
        self.evaluate_single_exam = evaluate_single_exam
        self.evaluator = Panoptica_Evaluator.load_from_config(
            str(files("brats_evaluation").joinpath("configs", "config_mets.yaml")))
        self.metrics = []

    def time_case(self, case, pred_path, ref_path, pred, ref, spacing, repeats) -> tuple[float, float]:
        """Seconds from the files (the command's per-case call) and from arrays, best of `repeats`."""
        files_time, metrics = best_time(
            lambda: self.evaluate_single_exam(str(pred_path), str(ref_path), case, self.evaluator), repeats)
        self.metrics.append(metrics)
        zyx_pred, zyx_ref = np.ascontiguousarray(pred.T), np.ascontiguousarray(ref.T)  # as SimpleITK reads them
        arrays_time, _ = best_time(lambda: {k: r.to_dict(True) for k, r in self.evaluator.evaluate(
            zyx_pred, zyx_ref, voxelspacing=spacing).items()}, repeats)
        return files_time, arrays_time

    def agreement(self, ours_rows: dict, tmp: Path) -> dict[str, str]:
        """Per case, whether every quantity of ours equals the package's parser output (1e-9, NaN = NaN)."""
        import json
        import math

        import pandas as pd
        from brats_evaluation.metrics_parser import parse_mets_results

        (tmp / "official.json").write_text(json.dumps({"metrics": self.metrics, "missings": []}))
        parse_mets_results(str(tmp / "official.json"), 27.0, 0.2, str(tmp / "official.csv"))
        table = pd.read_csv(tmp / "official.csv", dtype={"subject_id": str}).set_index("subject_id")
        agree = {}
        for case, regions in ours_rows.items():
            same = all(
                (math.isnan(value) and math.isnan(table.loc[case, f"{q}_{r.lower()}"]))
                or abs(value - table.loc[case, f"{q}_{r.lower()}"]) <= 1e-9
                for r, quantities in regions.items() for q, value in quantities.items())
            agree[case] = "yes" if same else "NO"
        return agree


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rules", choices=["brats2023", "brats2025", "both"], default="both")
    parser.add_argument("--skip-official", action="store_true", help="time ours only (the official code is slow)")
    parser.add_argument("--repeats", type=int, default=5, help="runs of ours per case (best one counts)")
    parser.add_argument("--official-repeats", type=int, default=1, help="runs of the official code per case")
    args = parser.parse_args()
    os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})
    with tempfile.TemporaryDirectory() as tmp:
        if args.rules in ("brats2023", "both"):
            (Path(tmp) / "2023").mkdir()
            print("BraTS 2023 rules (`--rules brats2023`)\n")
            bench_2023({**real_cases(), "99999-000 (phantom, 40 lesions)": generated_case(Path(tmp) / "2023"),
                        "99998-000 (the phantom, untrained-model prediction)": untrained_case(Path(tmp) / "2023")},
                       args)
        if args.rules in ("brats2025", "both"):
            (Path(tmp) / "2025").mkdir()
            print("\nBraTS 2025 rules (`--rules brats2025`)\n")
            bench_2025({**real_cases(), "99999-000 (phantom, 40 lesions, cavity)": generated_case(
                Path(tmp) / "2025", cavity=True)}, args, Path(tmp))


if __name__ == "__main__":
    main()
