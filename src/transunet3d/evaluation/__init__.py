"""Lesion-wise evaluation by two rule sets, each identical in its numbers to its official code: BraTS 2023
(BraTS-MET settings, the default) and BraTS 2025 (the `brats-evaluation` package, mets config). See `rules`."""

from transunet3d.evaluation.brats2025 import Brats2025Scores, score_region_2025
from transunet3d.evaluation.lesionwise import RegionScores, region_mask, score_region
from transunet3d.evaluation.rules import RULE_SETS, rule_set
from transunet3d.evaluation.surface import robust_hausdorff, surface_of

__all__ = ["RULE_SETS", "Brats2025Scores", "RegionScores", "region_mask", "robust_hausdorff", "rule_set",
           "score_region", "score_region_2025", "surface_of"]
