"""`python -m transunet3d` (also what `torchrun -m transunet3d` runs)."""

from transunet3d.cli.main import main

main()
