"""Seconds per case to bring a 4x240x240x155 phantom case (1 mm) to 0.5x0.5x1 mm and to 1x1x3 mm and its region
probabilities back, against nnU-Net v2's `resample_data_or_seg_to_shape` on the same arrays in the same run.

nnU-Net is a benchmark-only reference: `.venv/bin/pip install --no-deps nnunetv2 batchgenerators` (its resampling
module needs only torch, numpy, scipy, pandas, scikit-image and batchgenerators at import). Without it the
reference columns say so.

    python benchmarks/bench_resample.py
"""

from __future__ import annotations

import time

import numpy as np
import torch
from scipy import ndimage

from transunet3d.config.schema import MODALITIES
from transunet3d.data.labels import label_scheme
from transunet3d.data.phantom import PhantomSpec, generate_phantom
from transunet3d.data.resample import (
    anisotropic_axis,
    keep_vanished_lesions,
    resample_image,
    resample_labels,
    resample_probabilities,
    resampled_shape,
)

try:
    from nnunetv2.preprocessing.resampling.default_resampling import resample_data_or_seg_to_shape
except ImportError as error:
    resample_data_or_seg_to_shape = None
    MISSING = f"nnunetv2 not importable ({error})"

TARGETS = ((0.5, 0.5, 1.0), (1.0, 1.0, 3.0))
SPACING = (1.0, 1.0, 1.0)


def timed(function, *args):
    start = time.perf_counter()
    result = function(*args)
    return result, time.perf_counter() - start


def nnunet(data, shape, spacing, target, is_seg, order):
    """nnU-Net's plan defaults: order 3 (images) or 1 (labels), order_z 0, anisotropic axis chosen per case."""
    return resample_data_or_seg_to_shape(data, shape, spacing, target, is_seg=is_seg, order=order, order_z=0,
                                         force_separate_z=None)


def back_to_input(probabilities: torch.Tensor, shape: tuple[int, ...], target: tuple[float, ...]) -> torch.Tensor:
    """Prediction's way back: trilinear (the anisotropic axis by nearest neighbour), then every lesion above 0.5 on
    the training grid kept on the input's (`keep_vanished_lesions`), as `Predictor` does it."""
    resampled = resample_probabilities(probabilities, shape, "cpu", nearest_axis=anisotropic_axis(target, SPACING))
    keep_vanished_lesions(probabilities.numpy(), resampled.numpy(), (0.5,) * len(probabilities))
    return resampled


def agreement(ours: np.ndarray, theirs: np.ndarray) -> str:
    """Dice per region and 26-connected lesion counts (ours/nnU-Net's) of two label maps."""
    parts = []
    regions = label_scheme().labels_to_regions
    for name, a, b in zip(("WT", "TC", "ET"), regions(ours), regions(theirs)):
        dice = 2 * np.logical_and(a, b).sum() / max(a.sum() + b.sum(), 1)
        count = [ndimage.label(m, np.ones((3, 3, 3)))[1] for m in (a, b)]
        parts.append(f"{name} {dice:.4f} ({count[0]}/{count[1]})")
    return ", ".join(parts)


def main() -> None:
    phantom = generate_phantom(PhantomSpec(spacing=SPACING, lesions=(20, 20), diameter_mm=(3.0, 30.0)), 0, 1)
    images = np.stack([phantom.images[m] for m in MODALITIES]).astype(np.float32)
    seg = phantom.seg
    print(f"torch threads {torch.get_num_threads()}; case {images.shape}; "
          f"lesions per region "
          f"{[ndimage.label(m, np.ones((3, 3, 3)))[1] for m in label_scheme().labels_to_regions(seg)]}")
    print("| target | step | ours (s) | nnU-Net v2 (s) | agreement |")
    print("| --- | --- | --- | --- | --- |")
    for target in TARGETS:
        shape = resampled_shape(seg.shape, SPACING, target)
        label = "x".join(f"{t:g}" for t in target)
        spline, seconds = timed(resample_image, images, shape, SPACING, target, "spline")
        row = ["images, spline", f"{seconds:.2f}"]
        if resample_data_or_seg_to_shape is not None:
            theirs, reference = timed(nnunet, images, shape, SPACING, target, False, 3)
            row += [f"{reference:.2f}", f"max abs difference {np.abs(spline - theirs).max():.2g}"]
        else:
            row += [MISSING, ""]
        print(f"| {label} | " + " | ".join(row) + " |")
        _, seconds = timed(resample_image, images, shape, SPACING, target, "trilinear")
        print(f"| {label} | images, trilinear | {seconds:.2f} | | |")
        labels, seconds = timed(resample_labels, seg, shape, SPACING, target)
        row = ["labels", f"{seconds:.2f}"]
        if resample_data_or_seg_to_shape is not None:
            theirs, reference = timed(nnunet, seg[None], shape, SPACING, target, True, 1)
            row += [f"{reference:.2f}", "Dice (lesions ours/nnU-Net) " + agreement(labels, theirs[0])]
        else:
            row += [MISSING, ""]
        print(f"| {label} | " + " | ".join(row) + " |")
        probabilities = torch.from_numpy(label_scheme().labels_to_regions(labels).astype(np.float32))
        _, seconds = timed(back_to_input, probabilities, seg.shape, target)
        row = ["3 probabilities back to 1 mm, vanished lesions kept", f"{seconds:.2f}"]
        if resample_data_or_seg_to_shape is not None:
            _, reference = timed(nnunet, probabilities.numpy(), seg.shape, target, SPACING, False, 1)
            row += [f"{reference:.2f}", ""]
        else:
            row += [MISSING, ""]
        print(f"| {label} | " + " | ".join(row) + " |")


if __name__ == "__main__":
    main()
