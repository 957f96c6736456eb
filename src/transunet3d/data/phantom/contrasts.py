"""The four MRI contrasts of a phantom: tissue signal, smooth bias field, Rician noise, integer scanner scale."""

from __future__ import annotations

import numpy as np

from transunet3d.config.schema import MODALITIES
from transunet3d.data.phantom.anatomy import Anatomy
from transunet3d.data.phantom.cavities import RC
from transunet3d.data.phantom.lesions import ET, NETC, SNFH

# Relative signal (white matter on T1 = 1) of CSF, GM, WM and of the lesion compartments, per contrast:
# CSF dark on T1/t1c, bright on T2, suppressed on FLAIR; WM > GM on T1, GM > WM on T2/FLAIR; enhancing tumour
# bright on t1c; edema bright on T2 and FLAIR; necrosis fluid-like; a resection cavity is fluid like CSF, its FLAIR
# signal suppressed less completely (protein and blood products in the cavity fluid).
SIGNAL: dict[str, dict[str | int, float]] = {
    "t1n": {"csf": 0.30, "gm": 0.70, "wm": 1.00, NETC: 0.35, SNFH: 0.62, ET: 0.72, RC: 0.28},
    "t1c": {"csf": 0.32, "gm": 0.72, "wm": 1.00, NETC: 0.38, SNFH: 0.64, ET: 1.65, RC: 0.30},
    "t2w": {"csf": 1.00, "gm": 0.55, "wm": 0.40, NETC: 0.92, SNFH: 0.82, ET: 0.62, RC: 1.00},
    "t2f": {"csf": 0.12, "gm": 0.62, "wm": 0.45, NETC: 0.50, SNFH: 1.00, ET: 0.78, RC: 0.22},
}
_BIAS_DEGREE = 2
_BIAS_STRENGTH = 0.08


def synthesize_contrasts(anatomy: Anatomy, seg: np.ndarray, rng: np.random.Generator) -> dict[str, np.ndarray]:
    """Four int16 volumes (zero outside the brain), keyed by modality, for the tissue maps and label map given."""
    noise_level = rng.uniform(0.02, 0.05)
    brain = anatomy.brain
    labels = seg[brain]
    fractions = {t: getattr(anatomy, t)[brain] for t in ("csf", "gm", "wm")}
    images = {}
    for modality in MODALITIES:
        signal = _tissue_signal(SIGNAL[modality], fractions, labels, rng)
        signal *= _bias_field(anatomy.shape, rng)[brain]
        signal = _rician(signal, noise_level, rng)
        scale = rng.uniform(300.0, 1200.0)
        volume = np.zeros(anatomy.shape, dtype=np.int16)
        volume[brain] = np.clip(np.rint(signal * scale), 1, np.iinfo(np.int16).max)
        images[modality] = volume
    return images


def _tissue_signal(table: dict, fractions: dict[str, np.ndarray], labels: np.ndarray, rng) -> np.ndarray:
    """Partial-volume mixture of CSF/GM/WM, replaced by the lesion compartments' signal where labelled."""
    # The cavity's jitter comes last and only for a case with a cavity: a case without one draws exactly the
    # numbers it drew before cavities existed, so its images stay the same bit for bit.
    keys = [key for key in table if key != RC or np.any(labels == RC)]
    jitter = {key: table[key] * rng.uniform(0.93, 1.07) for key in keys}
    signal = sum(jitter[t] * fractions[t] for t in ("csf", "gm", "wm")).astype(np.float32)
    for label in (NETC, SNFH, ET, RC):
        if label in jitter:
            signal[labels == label] = jitter[label]
    return signal


def _bias_field(shape: tuple[int, int, int], rng: np.random.Generator) -> np.ndarray:
    """exp of a random low-order cosine series: a smooth multiplicative intensity inhomogeneity."""
    coefficients = rng.normal(0.0, _BIAS_STRENGTH, size=(_BIAS_DEGREE + 1,) * 3).astype(np.float32)
    coefficients[0, 0, 0] = 0.0
    bases = [
        np.cos(np.pi * np.outer(np.linspace(0, 1, n), np.arange(_BIAS_DEGREE + 1))).astype(np.float32)
        for n in shape
    ]
    return np.exp(np.einsum("ijk,xi,yj,zk->xyz", coefficients, *bases, optimize=True))


def _rician(signal: np.ndarray, level: float, rng: np.random.Generator) -> np.ndarray:
    """Magnitude of the signal plus complex Gaussian noise of std `level` (relative to white matter)."""
    real = signal + rng.normal(0.0, level, size=signal.shape).astype(np.float32)
    imaginary = rng.normal(0.0, level, size=signal.shape).astype(np.float32)
    return np.sqrt(real * real + imaginary * imaginary)
