"""From region probabilities to a BraTS label map: threshold each region of the label scheme, optionally drop tiny
or coreless components, nest, relabel."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import cc3d
import numpy as np

from transunet3d.config.schema import NON_NEGATIVE, OPEN_FRACTION, Range
from transunet3d.data.labels import DEFAULT_SCHEME, SCHEMES, LabelScheme
from transunet3d.errors import UserError


@dataclass(frozen=True)
class PostprocessSettings:
    """How region probabilities become labels, with a threshold and a minimum lesion size per region.

    Attributes:
        thresholds: per region of `scheme` (WT, TC, ET, and RC in brats-mets-2025), a voxel belongs to the
            region where its probability exceeds this.
        min_lesion_mm3: per region, components of a smaller volume are dropped (0: none is).
        require_core: drop the WT components that hold no TC voxel (see `drop_coreless_whole_tumour`).
        scheme: the label scheme: the regions, in the order of the probabilities, and how they become labels.
    """

    thresholds: tuple[float, ...] = (0.5, 0.5, 0.5)
    min_lesion_mm3: tuple[float, ...] = (0.0, 0.0, 0.0)
    require_core: bool = False
    scheme: LabelScheme = SCHEMES[DEFAULT_SCHEME]

    def __post_init__(self):
        regions = self.scheme.region_names
        for name, rule in (("thresholds", OPEN_FRACTION), ("min_lesion_mm3", NON_NEGATIVE)):
            values = tuple(float(value) for value in getattr(self, name))
            if len(values) != len(regions):
                raise ValueError(f"{name}: expected one value per region {regions}, got {values}")
            problem = rule.problem(values)  # a threshold of 7 or NaN leaves no voxel: an empty label map
            if problem is not None:
                raise ValueError(f"{name}: {problem}")
            object.__setattr__(self, name, values)  # lists become tuples: settings are hashable table keys
        object.__setattr__(self, "require_core", bool(self.require_core))

    @classmethod
    def uniform(cls, threshold: float = 0.5, min_lesion_mm3: float = 0.0, require_core: bool = False,
                scheme: LabelScheme = SCHEMES[DEFAULT_SCHEME]) -> PostprocessSettings:
        """One threshold and minimum size for every region of `scheme`, as the `infer` section of the config
        gives them."""
        count = len(scheme.regions)
        return cls((threshold,) * count, (min_lesion_mm3,) * count, require_core, scheme)

    def labels(self, probabilities: np.ndarray, spacing: Sequence[float]) -> np.ndarray:
        """Labels (uint8) of the scheme from region probabilities (R, X, Y, Z) with voxels of `spacing` (mm)."""
        # A Python float threshold compares in the array's own precision, as predictions have always done.
        regions = np.stack([probabilities[index] > threshold for index, threshold in enumerate(self.thresholds)])
        limits = [min_component_voxels(volume, spacing) for volume in self.min_lesion_mm3]
        regions = remove_small_components(regions, limits, self.scheme)
        if self.require_core:
            regions = drop_coreless_whole_tumour(regions, self.scheme)
        return self.scheme.regions_to_labels(regions)

    def to_json(self) -> dict[str, Any]:
        """The settings as JSON data, per region by name."""
        regions = self.scheme.region_names
        return {
            "thresholds": dict(zip(regions, self.thresholds)),
            "min_lesion_mm3": dict(zip(regions, self.min_lesion_mm3)),
            "require_core": self.require_core,
        }

    @classmethod
    def from_json(cls, data: Any, scheme: LabelScheme = SCHEMES[DEFAULT_SCHEME]) -> PostprocessSettings:
        """Settings from `to_json`'s data for the regions of `scheme`; anything missing or out of range is a
        UserError that names it."""
        if not isinstance(data, dict):
            raise UserError(f"postprocessing settings: expected an object, got {type(data).__name__}")
        unknown = sorted(set(data) - {"thresholds", "min_lesion_mm3", "require_core"})
        if unknown:
            raise UserError(f"postprocessing settings: unknown key(s) {', '.join(unknown)}")
        regions = scheme.region_names
        thresholds = _per_region(data, "thresholds", regions, OPEN_FRACTION)
        sizes = _per_region(data, "min_lesion_mm3", regions, NON_NEGATIVE)
        require_core = data.get("require_core")
        if not isinstance(require_core, bool):
            raise UserError(f"postprocessing settings: require_core must be true or false, got {require_core!r}")
        return cls(thresholds, sizes, require_core, scheme)


def _per_region(data: dict[str, Any], key: str, regions: tuple[str, ...], rule: Range) -> tuple[float, ...]:
    """The values of `data[key]` ({"WT": .., "TC": .., "ET": ..}) in the order of `regions`, each in `rule`'s
    range."""
    values = data.get(key)
    if not isinstance(values, dict) or sorted(values) != sorted(regions):
        raise UserError(f"postprocessing settings: {key} must give exactly the regions {', '.join(regions)}, "
                        f"got {values!r}")
    for region in regions:
        value = values[region]
        if isinstance(value, bool) or not isinstance(value, (int, float)) or rule.problem(value) is not None:
            raise UserError(f"postprocessing settings: {key}.{region} = {value!r} is not a finite number "
                            f"{rule.describe()}")
    return tuple(float(values[region]) for region in regions)


def remove_small_components(regions: np.ndarray, min_voxels: Sequence[int],
                            scheme: LabelScheme = SCHEMES[DEFAULT_SCHEME]) -> np.ndarray:
    """Boolean regions of `scheme` (WT, TC, ET, ...) without the 26-connected components smaller than their
    region's `min_voxels`.

    Afterwards each region is cut to the regions that enclose it (ET inside TC inside WT; the cavity RC is in none),
    so that removing a small WT component also removes the core inside it instead of leaving an orphaned core.
    Without any limit above one voxel nothing is cut: `regions_to_labels` then nests the regions by growing the
    outer ones instead.
    """
    if all(limit <= 1 for limit in min_voxels):
        return regions
    kept = np.stack([without_small_components(region, limit) if limit > 1 else region.copy()
                     for region, limit in zip(regions, min_voxels)])
    names = scheme.region_names
    for index, inner in enumerate(names):  # the schemes list outer regions first: they are cut before the inner
        for outer_index, outer in enumerate(names):
            if outer_index != index and scheme.encloses(outer, inner):
                kept[index] &= kept[outer_index]
    return kept


def without_small_components(mask: np.ndarray, min_voxels: int) -> np.ndarray:
    """`mask` without its 26-connected components of fewer than `min_voxels` voxels (as `cc3d.dust`).

    Only the mask's own voxels are looked at after the labelling, which makes this several times faster than
    `cc3d.dust` on sparse masks such as predicted lesions.
    """
    components, count = cc3d.connected_components(mask, connectivity=26, return_N=True)
    voxels = np.flatnonzero(mask)
    labels = components.ravel()[voxels]
    kept = np.zeros(mask.shape, dtype=bool)
    kept.ravel()[voxels[(np.bincount(labels, minlength=count + 1) >= min_voxels)[labels]]] = True
    return kept


def drop_coreless_whole_tumour(regions: np.ndarray, scheme: LabelScheme = SCHEMES[DEFAULT_SCHEME]) -> np.ndarray:
    """Boolean regions of `scheme` (WT, TC, ET, ...) without the WT components that hold no TC voxel, in every
    tumour region (those WT encloses); the cavity (RC) is left as it is.

    Metastatic edema surrounds a tumour core, so a coreless WT component is usually a false positive. Real
    references do hold some edema-only lesions (2 of 40 WT components in the four label maps of
    ../shared/data), which is why this is an option (`infer.require_core`), off by default.

    TC and ET voxels outside the thresholded WT lie in no WT component and are dropped too: with the rule, the
    WT threshold is a second opinion on every core voxel, where without it `regions_to_labels` grows WT around
    the core. Nesting first instead (a core above its threshold counts as WT) was measured and not kept
    (docs/demo.md, "Tried on 2026-12-01").
    """
    names = scheme.region_names
    whole = regions[names.index("WT")]
    core = regions[names.index("TC")] & whole
    components = cc3d.connected_components(np.ascontiguousarray(whole), connectivity=26)
    cored = np.unique(components[core])
    kept = regions.copy()
    kept[[scheme.encloses("WT", name) for name in names]] &= np.isin(components, cored[cored > 0])
    return kept


def min_component_voxels(min_mm3: float, spacing: Sequence[float]) -> int:
    """The smallest voxel count whose volume reaches `min_mm3` with voxels of `spacing` (mm)."""
    voxel = float(np.prod(spacing))
    return max(math.ceil(min_mm3 / voxel - 1e-9), 0)
