"""The brats-mets-2023 regions under their old name, for the evaluation package alone until it reads the label
schemes of `data/labels.py` (its own branch does); nothing else may use this module, which goes with that merge."""

from __future__ import annotations

from transunet3d.data.labels import label_scheme

REGION_LABELS: dict[str, tuple[int, ...]] = label_scheme("brats-mets-2023").regions
