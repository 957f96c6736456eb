"""BraTS 2023 lesion-wise evaluation (BraTS-MET settings), identical in its numbers to the challenge code."""

from transunet3d.evaluation.lesionwise import RegionScores, region_mask, score_region
from transunet3d.evaluation.surface import robust_hausdorff, surface_of

__all__ = ["RegionScores", "region_mask", "robust_hausdorff", "score_region", "surface_of"]
