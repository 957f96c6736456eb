"""BraTS-METS data: discover and validate cases, phantoms, preprocessing cache, k-fold splits.

The names below are imported from their modules when first used: reading and checking files (`layout`, `nifti`,
`crop`) does not import torch, which only resampling needs.
"""

from transunet3d.lazy import lazy_exports

__getattr__, __all__ = lazy_exports(__name__, {
    "CachedCase": "cache",
    "CaseFiles": "layout",
    "Geometry": "nifti",
    "LabelScheme": "labels",
    "LoadedCase": "validate",
    "PreprocessReport": "preprocess",
    "SCHEMES": "labels",
    "brain_box": "crop",
    "cached_case_ids": "cache",
    "crop": "crop",
    "discover_cases": "layout",
    "label_scheme": "labels",
    "load_case": "validate",
    "make_splits": "splits",
    "open_case": "cache",
    "preprocess_dataset": "preprocess",
    "uncrop": "crop",
    "validate_cases": "validate",
    "write_nifti": "nifti",
    "write_splits": "splits",
})
