"""Random 128^3 patch reads from the preprocessing cache: memory-mapped .npy (ours) vs blosc2 (nnU-Net v2's store).

Both stores hold the same preprocessed full-size phantom case (four float32 channels + uint8 seg). Each read takes
a random patch of all four channels and the seg, as a training loader does. "warm" reads hit the page cache;
"cold" reads first evict the files from it (posix_fadvise DONTNEED), as the first epoch over a large data set does.
The reference is loading the whole case with np.load, measured in the same run.

    python benchmarks/bench_cache.py [--reads 40] [--patch 128]
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

import blosc2
import numpy as np

from transunet3d.data.cache import image_path, seg_path
from transunet3d.data.phantom import PhantomSpec, write_phantoms
from transunet3d.data.preprocess import preprocess_dataset

CASE = "BraTS-MET-00001-000"


def evict(paths: list[Path]) -> None:
    for path in paths:
        fd = os.open(path, os.O_RDONLY)
        os.fsync(fd)
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
        os.close(fd)


def random_slices(rng: np.random.Generator, shape: tuple[int, ...], patch: int) -> tuple[slice, ...]:
    starts = [int(rng.integers(0, max(n - patch, 0) + 1)) for n in shape]
    return tuple(slice(s, s + patch) for s in starts)


def read_npy(root: Path, where: tuple[slice, ...]) -> tuple[np.ndarray, np.ndarray]:
    image = np.load(image_path(root, CASE), mmap_mode="r")
    seg = np.load(seg_path(root, CASE), mmap_mode="r")
    return np.array(image[(slice(None), *where)]), np.array(seg[where])


def write_blosc2(root: Path, codec: blosc2.Codec, clevel: int, chunk: int) -> list[Path]:
    image = np.load(image_path(root, CASE))
    seg = np.load(seg_path(root, CASE))
    paths = [root / f"{codec.name}-{clevel}-img.b2nd", root / f"{codec.name}-{clevel}-seg.b2nd"]
    cparams = {"codec": codec, "clevel": clevel, "nthreads": 1}
    blosc2.asarray(image, urlpath=str(paths[0]), mode="w", chunks=(1, chunk, chunk, chunk),
                   blocks=(1, 32, 32, 32), cparams=cparams)
    blosc2.asarray(seg, urlpath=str(paths[1]), mode="w", chunks=(chunk,) * 3, blocks=(32,) * 3, cparams=cparams)
    return paths


def read_blosc2(paths: list[Path], where: tuple[slice, ...]) -> tuple[np.ndarray, np.ndarray]:
    image = blosc2.open(str(paths[0]), mode="r", dparams={"nthreads": 1})
    seg = blosc2.open(str(paths[1]), mode="r", dparams={"nthreads": 1})
    return image[(slice(None), *where)], seg[where]


def time_reads(read, files: list[Path], shape, patch: int, reads: int, cold: bool) -> float:
    rng = np.random.default_rng(0)
    total = 0.0
    for _ in range(reads):
        if cold:
            evict(files)
        where = random_slices(rng, shape, patch)
        start = time.perf_counter()
        read(where)
        total += time.perf_counter() - start
    return total / reads * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reads", type=int, default=40)
    parser.add_argument("--patch", type=int, default=128)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        write_phantoms(tmp / "raw", cases=1, seed=0, spec=PhantomSpec(), progress=False)
        preprocess_dataset(tmp / "raw", tmp / "pre", progress=False)
        root = tmp / "pre"
        npy_files = [image_path(root, CASE), seg_path(root, CASE)]
        shape = np.load(seg_path(root, CASE), mmap_mode="r").shape
        stores = {"npy (memory-mapped)": (lambda w: read_npy(root, w), npy_files)}
        for codec, level in ((blosc2.Codec.ZSTD, 8), (blosc2.Codec.LZ4, 5)):
            files = write_blosc2(root, codec, level, chunk=64)
            stores[f"blosc2 {codec.name.lower()} clevel {level}"] = (lambda w, f=files: read_blosc2(f, w), files)
        evict(npy_files)
        whole = time_reads(lambda w: (np.load(npy_files[0]), np.load(npy_files[1])), npy_files, shape,
                           args.patch, 5, cold=False)
        print(f"case {shape} cropped, patch {args.patch}^3, {args.reads} reads each, one thread")
        print(f"reference: whole-case np.load (warm) {whole:.1f} ms")
        print("| store | size on disk (MB) | warm read (ms) | cold read (ms) | warm read vs whole-case load |")
        print("| --- | --- | --- | --- | --- |")
        for name, (read, files) in stores.items():
            size = sum(f.stat().st_size for f in files) / 1e6
            warm = time_reads(read, files, shape, args.patch, args.reads, cold=False)
            cold = time_reads(read, files, shape, args.patch, max(args.reads // 4, 3), cold=True)
            print(f"| {name} | {size:.1f} | {warm:.1f} | {cold:.1f} | {whole / warm:.2f}x |")


if __name__ == "__main__":
    main()
