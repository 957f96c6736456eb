"""Augmentation throughput: ours (batched torch) vs batchgenerators (nnU-Net's augmenter), same batch, one run.

Both apply the paper's transforms with nnU-Net's probabilities: rotation +-30 deg and scaling 0.7-1.4 (p .2 each,
trilinear images / nearest labels, no elastic deformation), Gaussian noise, Gaussian blur, brightness, contrast,
low-resolution simulation, gamma with and without inversion, mirroring. Input: a batch of 2 x 4 images with 3 region
targets, on the CPU, read at `read_size` (308 x 314 x 308 for a 128^3 patch); both augmenters resample or crop the
centred 128^3 patch out of it, batchgenerators as nnU-Net calls it (patch_size = the final patch, no random crop).
batchgenerators runs in this process (one core); ours is timed with one thread and with all threads.

    python benchmarks/bench_augment.py [--batches 8] [--patch 128]
"""

from __future__ import annotations

import argparse
import math
import time

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
from transunet3d.training.augment import augment_batch, read_size


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
    patch = (args.patch,) * 3
    read = read_size(patch, config)
    rng = np.random.default_rng(0)
    images = rng.standard_normal((2, 4, *read), dtype=np.float32)
    targets = np.zeros((2, 3, *read), dtype=np.uint8)
    offsets = [(r - p) // 2 for r, p in zip(read, patch)]
    targets[(..., *(slice(o + low, o + high) for o, (low, high) in zip(offsets, [(40, 80), (40, 90), (50, 70)])))] = 1
    pipeline = batchgenerators_pipeline(args.patch, config)
    seg = targets.astype(np.float32)  # nnU-Net's loader hands batchgenerators float segmentations

    def reference(index: int) -> None:
        np.random.seed(index)
        pipeline(data=images, seg=seg)  # its transforms write into new arrays

    torch_images, torch_targets = torch.from_numpy(images), torch.from_numpy(targets)

    def ours(index: int) -> None:
        augment_batch(torch_images, torch_targets, config, torch.Generator().manual_seed(index), patch)

    threads = torch.get_num_threads()
    results = {"batchgenerators (one process)": samples_per_second(reference, args.batches, 2)}
    torch.set_num_threads(1)
    results["ours, torch CPU, 1 thread"] = samples_per_second(ours, args.batches, 2)
    torch.set_num_threads(threads)
    results[f"ours, torch CPU, {threads} threads"] = samples_per_second(ours, args.batches, 2)
    base = results["batchgenerators (one process)"]
    print(f"batch 2 x 4 x {args.patch}^3 out of {' x '.join(map(str, read))} reads, {args.batches} batches each")
    print("| augmenter | samples/s | vs batchgenerators |")
    print("| --- | --- | --- |")
    for name, rate in results.items():
        print(f"| {name} | {rate:.2f} | {rate / base:.1f}x |")


if __name__ == "__main__":
    main()
