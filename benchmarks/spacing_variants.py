"""Does a trained run answer the same whatever voxel size and axis order a scan is stored in? (docs/inference.md)

Writes phantom series (the demo's generator settings, seeds of your choice) stored six ways: as generated, in
another axis order (x and y swapped, z flipped: ARI), 2x finer in-plane, with 3x thicker slices (partial volume
over each slice, `transunet3d phantom --resample-to`), and at the two voxel sizes that issue 16 names, 0.5 x 0.5 x
1 mm and 1 x 1 x 3 mm, whatever the generated one. Each copy is predicted by the run as a user would
(`transunet3d predict --model RUN`: its TTA and tuned post-processing) and scored against its own reference; the
table gives each copy's mean lesion-wise Dice and its gap to the copy as generated.

The thick copy's gap is split in two. "native on thick grid" is the prediction of the copy as generated, taken to
the thick grid by the nearest slice (as prediction takes probabilities back along a thick axis) and scored against
the thick reference: what the run would score if thick slices showed it what thin ones do. Its distance to the
as-generated score is what the thick grid itself costs; the rest of the gap is what the thick images hide.

    python benchmarks/spacing_variants.py demo/run /tmp/variants --seeds 7 101 11

Every copy leaves its phantoms, predictions and evaluation under OUT/seed_S/<copy>/; a rerun skips the copies
already scored. OUT/results.json holds the numbers.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

import nibabel as nib
import numpy as np

from transunet3d.data.resample import nearest_sources
from transunet3d.demo.pipeline import DemoSettings

THICK = "3x thicker slices"
NATIVE = "as generated"
NATIVE_ON_THICK = "native on thick grid"
FIXED_SIZES = {"0.5 x 0.5 x 1 mm": (0.5, 0.5, 1.0), "1 x 1 x 3 mm": (1.0, 1.0, 3.0)}  # the voxel sizes issue 16 names


def copies(spacing: tuple[float, float, float]) -> dict[str, list[str]]:
    """The `transunet3d phantom` options that store a series each way, from its generated voxel size."""
    x, y, z = spacing
    return {
        NATIVE: [],
        "axis order ARI": ["--axis-order", "ARI"],
        "2x finer in-plane": ["--resample-to", str(x / 2), str(y / 2), str(z)],
        THICK: ["--resample-to", str(x), str(y), str(3 * z)],
        **{name: ["--resample-to", *map(str, size)] for name, size in FIXED_SIZES.items()},
    }


def transunet3d(*args: str) -> None:
    """Run one command of the toolkit; its output goes to the terminal, a failure stops the benchmark."""
    subprocess.run([sys.executable, "-m", "transunet3d", *args], check=True)


def scored(predictions: Path, references: Path, out: Path) -> dict:
    """Evaluate once (kept for reruns) and return the summary: mean lesion-wise Dice and TC found / false / missed."""
    summary = out / "summary.json"
    if not summary.is_file():
        transunet3d("evaluate", str(predictions), str(references), "--out", str(out / "metrics.csv"),
                    "--summary", str(summary))
    record = json.loads(summary.read_text())
    core = record["regions"]["TC"]
    return {"mean": record["overall"]["mean_lesionwise_dice"],
            **{region: values["mean_lesionwise_dice"] for region, values in record["regions"].items()},
            "tc_found_false_missed": [core["total_num_tp"], core["total_num_fp"], core["total_num_fn"]]}


def on_grid_of(labels: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    """Nearest-slice resampling of every axis whose size differs (`data.resample.nearest_sources`)."""
    for axis, size in enumerate(shape):
        if labels.shape[axis] != size:
            labels = np.take(labels, nearest_sources(labels.shape[axis], size), axis=axis)
    return labels


def native_on_thick_grid(predictions: Path, thick: Path, out: Path) -> None:
    """Write each as-generated prediction on its thick copy's grid (same world extent, same axis order)."""
    out.mkdir(parents=True, exist_ok=True)
    for case in sorted(folder for folder in thick.iterdir() if folder.is_dir()):
        target = out / f"{case.name}.nii.gz"
        if target.is_file():
            continue
        reference = nib.load(case / f"{case.name}-seg.nii.gz")
        labels = np.asarray(nib.load(predictions / f"{case.name}.nii.gz").dataobj)
        image = nib.Nifti1Image(on_grid_of(labels, reference.shape).astype(np.uint8), reference.affine,
                                reference.header)
        partial = out / f".{case.name}.partial.nii.gz"
        nib.save(image, partial)
        partial.rename(target)


def series(run: Path, out: Path, seed: int, cases: int, workers: int) -> dict[str, dict]:
    """Write, predict and score one seed's copies (a copy already scored under `out` is kept)."""
    spec = DemoSettings().phantom_spec()
    generator = ["--cases", str(cases), "--seed", str(seed), "--shape", *map(str, spec.shape),
                 "--lesions", *map(str, spec.lesions), "--diameter", *map(str, spec.diameter_mm),
                 "--workers", str(workers)]
    results = {}
    for name, options in copies(spec.resolved_spacing()).items():
        folder = out / name.replace(" ", "_")
        if not (folder / "evaluation" / "summary.json").is_file():
            transunet3d("phantom", str(folder / "phantoms"), *generator, *options)
            transunet3d("predict", str(folder / "phantoms"), str(folder / "predictions"), "--model", str(run))
        results[name] = scored(folder / "predictions", folder / "phantoms", folder / "evaluation")
    native, thick = out / NATIVE.replace(" ", "_"), out / THICK.replace(" ", "_")
    native_on_thick_grid(native / "predictions", thick / "phantoms", out / "native_on_thick" / "predictions")
    results[NATIVE_ON_THICK] = scored(out / "native_on_thick" / "predictions", thick / "phantoms",
                                      out / "native_on_thick" / "evaluation")
    return results


def table(results: dict[int, dict[str, dict]]) -> str:
    """Markdown: per seed and copy, the mean lesion-wise Dice (TC found / false / missed) and the gap."""
    names = list(next(iter(results.values())))
    lines = ["| seed | " + " | ".join(names) + " |", "| --- |" + " --- |" * len(names)]
    for seed, copies_of_seed in results.items():
        native = copies_of_seed[NATIVE]["mean"]
        cells = []
        for name in names:
            value = copies_of_seed[name]
            found = " / ".join(map(str, value["tc_found_false_missed"]))
            gap = "" if name == NATIVE else f", gap {native - value['mean']:+.3f}"
            cells.append(f"{value['mean']:.3f} ({found}{gap})")
        lines.append(f"| {seed} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run", type=Path, help="a trained run folder (demo/run after `make demo`)")
    parser.add_argument("out", type=Path, help="where the phantoms, predictions and scores go")
    parser.add_argument("--seeds", type=int, nargs="+", default=[7, 101, 11])
    parser.add_argument("--cases", type=int, default=8, help="cases per series")
    parser.add_argument("--workers", type=int, default=2, help="phantom cases written in parallel")
    args = parser.parse_args()
    results = {seed: series(args.run, args.out / f"seed_{seed}", seed, args.cases, args.workers)
               for seed in args.seeds}
    (args.out / "results.json").write_text(json.dumps(results, indent=1))
    print(table(results))


if __name__ == "__main__":
    main()
