"""The console script's entry: the process settings that must come before torch is imported, then the commands."""

from __future__ import annotations

import os

# OpenMP threads that reach a barrier first spin before they sleep, about 300,000 rounds in libgomp (the OpenMP of
# PyTorch's Linux builds). When other jobs share the cores, the spinning thread holds a core that the thread it
# waits for needs. Measured on 2 cores with two busy processes beside a tiny-encoder prediction: 4.9 s wall and
# 4.8 s CPU at the default, 4.0 s and 3.6 s at 10,000 rounds (quiet: 1.75 s against 1.80 s, within noise). A value
# the user sets wins; other OpenMP runtimes ignore the variable.
OPENMP_SPIN_ROUNDS = "10000"


def main() -> None:
    """Console-script entry point (`transunet3d`, `python -m transunet3d`)."""
    os.environ.setdefault("GOMP_SPINCOUNT", OPENMP_SPIN_ROUNDS)  # read once, when torch loads libgomp
    from transunet3d.cli.main import main as run_commands

    run_commands()
