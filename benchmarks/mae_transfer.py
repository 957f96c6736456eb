"""Segmentation from MAE-pretrained encoder weights vs from scratch, same budget, on phantoms (tiny presets, CPU).

Pre-trains the tiny encoder's ViT as a masked autoencoder on the cached cases (labels unused), then trains the
`tiny` preset twice on the same fold with the same seed and budget: once from scratch, once with
`--init-encoder`. Prints the pseudo-Dice at a few epochs and draws both curves side by side.

    python benchmarks/mae_transfer.py --work /tmp/mae_transfer --figure docs/images/mae_vs_scratch.png
"""

from __future__ import annotations

import argparse
import csv
import subprocess
import sys
from pathlib import Path

from matplotlib.figure import Figure

from transunet3d.data.phantom import PhantomSpec, write_phantoms
from transunet3d.data.preprocess import preprocess_dataset
from transunet3d.data.splits import write_splits
from transunet3d.runs.layout import RunFolder

EXE = [sys.executable, "-m", "transunet3d"]


def run(*args: str) -> None:
    subprocess.run([*EXE, *args], check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def rows(run_dir: Path) -> list[dict[str, float]]:
    with RunFolder(run_dir).fold(0).log.open() as file:
        return [{k: float(v) for k, v in row.items()} for row in csv.DictReader(file)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work", type=Path, default=Path("mae_transfer"))
    parser.add_argument("--figure", type=Path, default=Path("mae_vs_scratch.png"))
    parser.add_argument("--pretrain-epochs", type=int, default=20)
    parser.add_argument("--epochs", type=int, default=24)
    parser.add_argument("--iterations", type=int, default=12)
    args = parser.parse_args()
    pre = args.work / "pre"
    if not (pre / "splits.json").exists():
        spec = PhantomSpec(shape=(96, 96, 80), lesions=(3, 8), diameter_mm=(6.0, 30.0))
        write_phantoms(args.work / "raw", cases=10, seed=11, spec=spec, workers=2)
        preprocess_dataset(args.work / "raw", pre, workers=2)
        write_splits(pre, folds=5, seed=12345)
    run("pretrain", str(pre), "--out", str(args.work / "mae"), "--preset", "mae-tiny", "--device", "cpu",
        "--set", f"loop.epochs={args.pretrain_epochs}")
    budget = ["--set", f"loop.epochs={args.epochs}", "--set", f"loop.iterations_per_epoch={args.iterations}",
              "--set", "loop.val_batches=4"]
    run("train", str(pre), "--preset", "tiny", "--out", str(args.work / "scratch"), "--device", "cpu",
        "--no-validate", *budget)
    run("train", str(pre), "--preset", "tiny", "--out", str(args.work / "mae_init"), "--device", "cpu",
        "--init-encoder", str(args.work / "mae"), "--no-validate", *budget)
    curves = {"from scratch": rows(args.work / "scratch"), "from MAE weights": rows(args.work / "mae_init")}
    figure = Figure(figsize=(11, 4))
    for axis, (name, log) in zip(figure.subplots(1, 2, sharey=True), curves.items()):
        epochs = [row["epoch"] for row in log]
        for region in ("WT", "TC", "ET"):
            axis.plot(epochs, [row[f"dice_{region}"] for row in log], label=f"pseudo-Dice {region}")
        axis.plot(epochs, [row["ema_dice"] for row in log], "k--", label="EMA of mean")
        axis.set_title(name)
        axis.set_xlabel("epoch")
        axis.grid(alpha=0.3)
        axis.legend(loc="lower right")
    figure.tight_layout()
    figure.savefig(args.figure, dpi=80)
    print("| epoch | scratch WT / TC / ET (EMA) | MAE init WT / TC / ET (EMA) |")
    print("| --- | --- | --- |")
    for epoch in sorted({0, args.epochs // 4, args.epochs // 2, 3 * args.epochs // 4, args.epochs - 1}):
        cells = [" / ".join(f"{log[epoch][f'dice_{r}']:.2f}" for r in ("WT", "TC", "ET"))
                 + f" ({log[epoch]['ema_dice']:.2f})" for log in curves.values()]
        print(f"| {epoch} | {cells[0]} | {cells[1]} |")
    mae_log = rows(args.work / "mae")
    print(f"MAE validation loss {mae_log[0]['val_loss']:.3f} -> {mae_log[-1]['val_loss']:.3f}")


if __name__ == "__main__":
    main()
