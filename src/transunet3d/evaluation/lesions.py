"""The per-lesion report: every reference lesion and every predicted component, with size and match.

Clinicians follow metastases by count, volume and longest axial diameter; this table gives those for both the
reference and the prediction, with the lesion-wise match and Dice behind the challenge score.
"""

from __future__ import annotations

from dataclasses import dataclass

import cc3d
import numpy as np
from scipy.spatial.distance import pdist

from transunet3d.evaluation.brats2025 import Brats2025Scores
from transunet3d.evaluation.lesionwise import RegionScores


@dataclass
class LesionRow:
    """One lesion of one region: `source` is "ref" (merged reference lesion) or "pred" (predicted component)."""

    case: str
    region: str
    source: str
    lesion_id: int
    volume_mm3: float
    centroid_voxel: tuple[float, float, float]
    centroid_mm: tuple[float, float, float]
    longest_axial_diameter_mm: float
    matched: bool
    lesion_dice: float
    counted: bool  # reference lesions of <= 2 mm^3 are not counted by the challenge; predictions always are


def lesion_rows(
    case: str, region: str, scores: RegionScores | Brats2025Scores, spacing: tuple[float, float, float],
    affine: np.ndarray, offset: tuple[int, int, int],
) -> list[LesionRow]:
    """Rows for every reference lesion and predicted component of one region of one case.

    A predicted component's Dice is taken against the reference lesions it touches (0 for a false positive).
    """
    axial = int(np.argmax(np.abs(np.asarray(affine)[2, :3])))  # the voxel axis closest to head-foot
    # BraTS 2025 scores keep their label arrays on the region's own box, which starts at `labels_offset`.
    offset = np.asarray(offset) + np.asarray(getattr(scores, "labels_offset", (0, 0, 0)))
    describe = _Describer(spacing, np.asarray(affine, dtype=np.float64), offset, axial)
    touching: dict[int, list[int]] = {}
    for lesion in scores.lesions:
        for component in lesion.matched:
            touching.setdefault(component, []).append(lesion.label)
    gt_stats, pred_stats = cc3d.statistics(scores.gt_lesions), cc3d.statistics(scores.pred_components)
    rows = []
    for lesion in scores.lesions:
        box = gt_stats["bounding_boxes"][lesion.label]
        rows.append(LesionRow(case, region, "ref", lesion.label, lesion.volume_mm3,
                              *describe(scores.gt_lesions[box] == lesion.label, box),
                              bool(lesion.matched), lesion.dice, lesion.counted))
    for component in range(1, len(pred_stats["voxel_counts"])):
        box = pred_stats["bounding_boxes"][component]
        mask = scores.pred_components[box] == component
        labels = touching.get(component, [])
        overlap = np.count_nonzero(mask & np.isin(scores.gt_lesions[box], labels)) if labels else 0
        size = int(pred_stats["voxel_counts"][component])
        reference_size = int(sum(gt_stats["voxel_counts"][label] for label in labels))
        volume = float(size) * spacing[0] * spacing[1] * spacing[2]
        rows.append(LesionRow(case, region, "pred", component, volume, *describe(mask, box),
                              bool(labels), 2.0 * overlap / (size + reference_size), True))
    return rows


class _Describer:
    """Centroid (voxel and world mm) and longest axial diameter of a lesion mask cut from its bounding box."""

    def __init__(self, spacing, affine: np.ndarray, offset: np.ndarray, axial: int):
        self.spacing = np.asarray(spacing, dtype=np.float64)
        self.affine, self.offset, self.axial = affine, offset, axial

    def __call__(self, mask: np.ndarray, box: tuple[slice, ...]):
        voxels = np.argwhere(mask)
        centroid = voxels.mean(axis=0) + [s.start for s in box] + self.offset
        world = self.affine[:3, :3] @ centroid + self.affine[:3, 3]
        return (tuple(round(float(c), 3) for c in centroid), tuple(round(float(w), 3) for w in world),
                self._longest_axial_diameter(voxels))

    def _longest_axial_diameter(self, voxels: np.ndarray) -> float:
        """Largest distance (mm) between voxel centres lying in one axial slice."""
        in_plane = [a for a in range(3) if a != self.axial]
        longest = 0.0
        for level in np.unique(voxels[:, self.axial]):
            points = voxels[voxels[:, self.axial] == level][:, in_plane] * self.spacing[in_plane]
            if len(points) > 1:
                longest = max(longest, float(pdist(_outline(points)).max()))
        return round(longest, 3)


def _outline(points: np.ndarray) -> np.ndarray:
    """The extreme points per row and column: the longest chord of a pixel set ends on these."""
    if len(points) < 64:
        return points
    keep = np.zeros(len(points), dtype=bool)
    for axis in (0, 1):
        order = np.lexsort((points[:, axis], points[:, 1 - axis]))
        rows = points[order, 1 - axis]
        first = np.r_[True, rows[1:] != rows[:-1]]
        last = np.r_[rows[1:] != rows[:-1], True]
        keep[order[first | last]] = True
    return points[keep]
