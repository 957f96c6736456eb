"""Whole jobs on a run: training its folds with their out-of-fold validation (`jobs.training`), and tuning its
post-processing on the pooled out-of-fold predictions (`jobs.tuning`). The CLI and the demo call these."""
