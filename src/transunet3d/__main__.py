"""`python -m transunet3d` (also what `torchrun -m transunet3d` runs)."""

from transunet3d.cli.launch import main

main()
