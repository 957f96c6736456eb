"""Cross-validation: each finished fold's out-of-fold validation (fold_K/validation/), pooled into RUN/cv/."""

from transunet3d.crossval.pooled import pool_folds, validated_folds
from transunet3d.crossval.validation import FoldValidation, check_fold, validate_fold, validation_cases

__all__ = ["FoldValidation", "check_fold", "pool_folds", "validate_fold", "validated_folds", "validation_cases"]
