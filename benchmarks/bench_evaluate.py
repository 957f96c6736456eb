"""Lesion-wise evaluation time per case: ours vs the official algorithm (official_brats2023.py), one core.

Cases: the four real BraTS-METS label maps in ../shared/data/labelmaps (240x240x155, 256x256x106 anisotropic,
512x512x176) and a generated 240x240x155 phantom case with 40 metastases whose "prediction" misses some lesions,
shifts the others by a voxel and adds false positives. Both implementations read the files themselves; the
script also checks that they agree on every number.

    python benchmarks/bench_evaluate.py [--skip-official] [--repeats 3]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import cc3d
import nibabel as nib
import numpy as np

from transunet3d.data.phantom import PhantomSpec, generate_phantom
from transunet3d.evaluation.case import evaluate_pair
from transunet3d.evaluation.pairing import CasePair

sys.path.insert(0, str(Path(__file__).parent))
import official_brats2023

LABELMAPS = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "labelmaps"
FIELDS = ["lesionwise_dice", "lesionwise_hd95", "legacy_dice", "legacy_hd95", "sensitivity", "specificity",
          "num_tp", "num_fp", "num_fn", "gt_volume"]


def generated_case(folder: Path) -> tuple[Path, Path]:
    """A full-size phantom with 40 lesions and an imperfect prediction of it."""
    phantom = generate_phantom(PhantomSpec(lesions=(40, 40), diameter_mm=(3.0, 30.0), edema_p=0.3), seed=2023, index=1)
    ref = phantom.seg
    components = cc3d.connected_components(ref > 0, connectivity=26)
    pred = np.roll(ref, 1, axis=0)
    pred[np.isin(np.roll(components, 1, axis=0), np.arange(1, components.max() + 1, 7))] = 0  # misses
    rng = np.random.default_rng(0)
    for x, y, z in rng.integers(40, 110, size=(5, 3)):
        pred[x:x + 3, y:y + 3, z:z + 2] = 3  # false positives
    affine = np.array(phantom.geometry.affine)
    nib.save(nib.Nifti1Image(ref, affine), folder / "BraTS-MET-99999-000-seg.nii.gz")
    nib.save(nib.Nifti1Image(pred, affine), folder / "BraTS-MET-99999-000.nii.gz")
    return folder / "BraTS-MET-99999-000.nii.gz", folder / "BraTS-MET-99999-000-seg.nii.gz"


def best_time(function, repeats: int) -> tuple[float, object]:
    best, value = float("inf"), None
    for _ in range(repeats):
        start = time.perf_counter()
        value = function()
        best = min(best, time.perf_counter() - start)
    return best, value


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--skip-official", action="store_true", help="time ours only (the reference is slow)")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})
    with tempfile.TemporaryDirectory() as tmp:
        cases = {f"{c} (real)": (LABELMAPS / "pred" / f"BraTS-MET-{c}.nii.gz",
                                 LABELMAPS / "ref" / f"BraTS-MET-{c}-seg.nii.gz")
                 for c in ("00132-000", "00217-000", "00630-001", "01325-000")}
        cases["99999-000 (phantom, 40 lesions)"] = generated_case(Path(tmp))
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


if __name__ == "__main__":
    main()
