#!/usr/bin/env bash
# The wheels that benchmarks/gpu_check.py needs on the GPU machine and its image lacks (Python 3.12, x86-64;
# that image has torch, numpy, scipy, click, pyyaml, matplotlib, tensorboard, tqdm, safetensors), into .whl/
# (ignored by git), about 22 MB. Run here, where PyPI is reachable; on the GPU machine they install offline
# (docs/benchmarks.md, "The GPU check"). The versions are the ones this project's environment was tested with;
# MONAI is the prediction reference, never a dependency of the package.
set -euo pipefail
cd "$(dirname "$0")/.."
rm -rf .whl
python3 -m pip download --quiet --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
    --platform manylinux_2_28_x86_64 --platform manylinux_2_24_x86_64 --platform manylinux_2_17_x86_64 \
    --platform manylinux2014_x86_64 -d .whl \
    nibabel==5.4.2 nilearn==0.14.1 connected-components-3d==3.29.0 isal==1.9.1 deflate==0.9.0 \
    surface-distance==0.1 monai==1.6.1
ls -1 .whl
