"""BraTS-METS data: discover and validate cases, phantoms, preprocessing cache, k-fold splits."""

from transunet3d.data.cache import CachedCase, cached_case_ids, open_case
from transunet3d.data.crop import brain_box, crop, uncrop
from transunet3d.data.labels import SCHEMES, LabelScheme, label_scheme
from transunet3d.data.layout import CaseFiles, discover_cases
from transunet3d.data.nifti import Geometry, write_nifti
from transunet3d.data.preprocess import PreprocessReport, preprocess_dataset
from transunet3d.data.splits import make_splits, write_splits
from transunet3d.data.validate import LoadedCase, load_case, validate_cases

__all__ = [
    "SCHEMES",
    "CachedCase",
    "CaseFiles",
    "Geometry",
    "LabelScheme",
    "LoadedCase",
    "PreprocessReport",
    "brain_box",
    "cached_case_ids",
    "crop",
    "discover_cases",
    "label_scheme",
    "load_case",
    "make_splits",
    "open_case",
    "preprocess_dataset",
    "uncrop",
    "validate_cases",
    "write_nifti",
    "write_splits",
]
