"""The console script sets the OpenMP spin before torch loads, and leaves a value the user gave."""

import os
import subprocess
import sys

from transunet3d.cli.launch import OPENMP_SPIN_ROUNDS

# The commands replaced by a stand-in that reports the variable and whether torch was already loaded.
PROBE = ("import os, sys, types; fake = types.ModuleType('transunet3d.cli.main'); "
         "fake.main = lambda: print(os.environ['GOMP_SPINCOUNT'], 'torch' in sys.modules); "
         "sys.modules['transunet3d.cli.main'] = fake; from transunet3d.cli.launch import main; main()")


def spin_seen(environment: dict[str, str]) -> str:
    return subprocess.run([sys.executable, "-c", PROBE], env=environment, capture_output=True, text=True,
                          check=True).stdout.strip()


def test_the_launcher_sets_the_spin_and_a_given_value_wins():
    environment = {k: v for k, v in os.environ.items() if k != "GOMP_SPINCOUNT"}
    assert spin_seen(environment) == f"{OPENMP_SPIN_ROUNDS} False"  # set before torch is loaded
    assert spin_seen({**environment, "GOMP_SPINCOUNT": "300000"}) == "300000 False"
