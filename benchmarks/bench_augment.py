"""Augmentation throughput: ours (batched torch) vs batchgenerators (nnU-Net's augmenter), one run; and the loader.

Both apply the paper's transforms with nnU-Net's probabilities: rotation +-30 deg and scaling 0.7-1.4 (p .2 each,
trilinear images / nearest labels, no elastic deformation), Gaussian noise, Gaussian blur, brightness, contrast,
low-resolution simulation, gamma with and without inversion, mirroring, and take the centred final patch out of a
larger read. Each gets the read it has in training: batchgenerators nnU-Net's fixed one (`get_patch_size`, 249^3 for
128^3), ours the one its batch's drawn transforms need (`augment.read_size`). Batches of 2 x 4 images with 3
region targets, on the CPU. batchgenerators runs in this process (one core); ours is timed with one thread and
with all threads. The loader part times `PatchBatches.batch` on phantom cases, with and without augmentation.

    python benchmarks/bench_augment.py [--batches 8] [--patch 128]
"""

from __future__ import annotations

import argparse
import math
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from batchgenerators.transforms.abstract_transforms import Compose
from batchgenerators.transforms.color_transforms import (
    BrightnessMultiplicativeTransform,
    ContrastAugmentationTransform,
    GammaTransform,
)
from batchgenerators.transforms.noise_transforms import GaussianBlurTransform, GaussianNoiseTransform
from batchgenerators.transforms.resample_transforms import SimulateLowResolutionTransform
from batchgenerators.transforms.spatial_transforms import MirrorTransform, SpatialTransform

from transunet3d.config.schema import AugmentConfig
from transunet3d.data.cache import cached_case_ids
from transunet3d.data.phantom import PhantomSpec, write_phantoms
from transunet3d.data.preprocess import preprocess_dataset
from transunet3d.training.augment import augment_batch, draw_spatial, read_size
from transunet3d.training.sampling import PatchBatches


def nnunet_read_size(patch: int, config: AugmentConfig) -> int:
    """nnU-Net's `get_patch_size` for a cubic patch: the patch's corner rotated about one axis at a time (the
    largest extent), divided by the smallest scale factor."""
    angle = math.radians(config.rotation_degrees)
    return int(patch * (math.cos(angle) + math.sin(angle)) / min(config.scale_range))


def batchgenerators_pipeline(patch: int, config: AugmentConfig) -> Compose:
    angle = (-math.radians(config.rotation_degrees), math.radians(config.rotation_degrees))
    return Compose([
        SpatialTransform((patch,) * 3, do_elastic_deform=False, do_rotation=True, angle_x=angle, angle_y=angle,
                         angle_z=angle, p_rot_per_axis=1, do_scale=True, scale=config.scale_range,
                         border_mode_data="constant", order_data=1, border_mode_seg="constant", order_seg=0,
                         random_crop=False, p_scale_per_sample=config.scale_p, p_rot_per_sample=config.rotation_p),
        GaussianNoiseTransform(config.noise_variance, p_per_sample=config.noise_p),
        GaussianBlurTransform(config.blur_sigma, different_sigma_per_channel=True, p_per_sample=config.blur_p,
                              p_per_channel=config.blur_channel_p),
        BrightnessMultiplicativeTransform(config.brightness_range, p_per_sample=config.brightness_p),
        ContrastAugmentationTransform(config.contrast_range, p_per_sample=config.contrast_p),
        SimulateLowResolutionTransform(zoom_range=config.lowres_zoom, per_channel=True,
                                       p_per_channel=config.lowres_channel_p, order_downsample=0,
                                       order_upsample=3, p_per_sample=config.lowres_p),
        GammaTransform(config.gamma_range, True, True, retain_stats=True, p_per_sample=config.gamma_inverted_p),
        GammaTransform(config.gamma_range, False, True, retain_stats=True, p_per_sample=config.gamma_p),
        MirrorTransform((0, 1, 2)),
    ])


def samples_per_second(run, batches: int, batch_size: int) -> float:
    run(0)  # warm-up
    start = time.perf_counter()
    for index in range(1, batches + 1):
        run(index)
    return batches * batch_size / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batches", type=int, default=8)
    parser.add_argument("--patch", type=int, default=128)
    args = parser.parse_args()
    config = AugmentConfig()
    augmenters(args.patch, args.batches, config)
    loader(args.patch, args.batches, config)


def _inputs(read: tuple[int, ...], patch: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    images = rng.standard_normal((2, 4, *read), dtype=np.float32)
    targets = np.zeros((2, 3, *read), dtype=np.uint8)
    offsets = [(r - patch) // 2 for r in read]
    block = [(patch * 5 // 16, patch * 5 // 8), (patch * 5 // 16, patch * 11 // 16), (patch * 3 // 8, patch * 9 // 16)]
    targets[(..., *(slice(o + low, o + high) for o, (low, high) in zip(offsets, block)))] = 1
    return images, targets


def augmenters(patch: int, batches: int, config: AugmentConfig) -> None:
    """Samples/s of both augmenters, each on the reads it gets in training."""
    rng = np.random.default_rng(0)
    fixed = (nnunet_read_size(patch, config),) * 3
    images, targets = _inputs(fixed, patch, rng)
    pipeline = batchgenerators_pipeline(patch, config)
    seg = targets.astype(np.float32)  # nnU-Net's loader hands batchgenerators float segmentations

    def reference(index: int) -> None:
        np.random.seed(index)
        pipeline(data=images, seg=seg)  # its transforms write into new arrays

    # Ours: every timed batch gets its own drawn transforms and a read of the size they need.
    spatial = [draw_spatial(config, 2, np.random.default_rng(index)) for index in range(batches + 1)]
    reads = [read_size((patch,) * 3, parameters) for parameters in spatial]
    inputs = [tuple(map(torch.from_numpy, _inputs(read, patch, rng))) for read in reads]

    def ours(index: int) -> None:
        augment_batch(*inputs[index], torch.from_numpy(spatial[index]), config,
                      torch.Generator().manual_seed(index), (patch,) * 3)

    threads = torch.get_num_threads()
    results = {"batchgenerators (one process)": samples_per_second(reference, batches, 2)}
    torch.set_num_threads(1)
    results["ours, torch CPU, 1 thread"] = samples_per_second(ours, batches, 2)
    torch.set_num_threads(threads)
    results[f"ours, torch CPU, {threads} threads"] = samples_per_second(ours, batches, 2)
    base = results["batchgenerators (one process)"]
    mean_read = np.mean([np.prod(read) for read in reads[1:]]) / patch**3
    print(f"batch 2 x 4 x {patch}^3; batchgenerators reads {fixed[0]}^3, ours {mean_read:.2f}x the patch's voxels "
          f"on average ({batches} batches each)")
    print("| augmenter | samples/s | vs batchgenerators |")
    print("| --- | --- | --- |")
    for name, rate in results.items():
        print(f"| {name} | {rate:.2f} | {rate / base:.1f}x |")


def loader(patch: int, batches: int, config: AugmentConfig) -> None:
    """Milliseconds per batch of 2 of `PatchBatches.batch` (one process), final-size reads vs augmented ones."""
    with tempfile.TemporaryDirectory() as tmp:
        write_phantoms(Path(tmp) / "raw", cases=4, seed=0, spec=PhantomSpec(shape=(160, 192, 160)), progress=False)
        preprocess_dataset(Path(tmp) / "raw", Path(tmp) / "pre", progress=False)
        cases = cached_case_ids(Path(tmp) / "pre")
        print(f"\nloader, {patch}^3 patches, {batches * 4} batches of 2 from 4 phantoms of 160 x 192 x 160")
        print("| reads | ms per batch | voxels read vs the patch |")
        print("| --- | --- | --- |")
        for name, augment in (("the patch (no spatial augmentation)", None), ("ours (drawn transforms)", config)):
            source = PatchBatches(Path(tmp) / "pre", cases, (patch,) * 3, 2, seed=0, augment=augment)
            source.batch(0)
            start, voxels = time.perf_counter(), []
            for index in range(1, batches * 4 + 1):
                batch = source.batch(index)
                batch.images.sum()  # touch every page, as the transfer to a worker queue or the device does
                voxels.append(np.prod(batch.images.shape[2:]) / patch**3)
            elapsed = (time.perf_counter() - start) / (batches * 4) * 1000
            print(f"| {name} | {elapsed:.0f} | {np.mean(voxels):.2f}x |")


if __name__ == "__main__":
    main()
