"""Figures of the report: training curves and reference-vs-prediction overlays in three planes."""

from __future__ import annotations

import io

import cc3d
import numpy as np
from matplotlib.colors import ListedColormap
from matplotlib.figure import Figure

# BraTS labels: 1 NETC red, 2 SNFH/edema green, 3 ET yellow (the colours of the challenge's figures), and 4 RC
# (resection cavity, brats-mets-2025) blue.
LABEL_COLORS = ListedColormap([(0, 0, 0, 0), (0.9, 0.1, 0.1, 0.7), (0.1, 0.8, 0.2, 0.45), (1.0, 0.85, 0.0, 0.7),
                               (0.2, 0.4, 1.0, 0.55)])
VIEWS = ("axial", "coronal", "sagittal")


def png(figure: Figure, dpi: int = 80) -> bytes:
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=dpi)
    return buffer.getvalue()


def focus_point(reference: np.ndarray, prediction: np.ndarray) -> tuple[int, int, int]:
    """The centre of the largest reference lesion (else of the largest predicted one, else of the volume)."""
    for labels in (reference, prediction):
        components = cc3d.connected_components(labels > 0, connectivity=26)
        if components.max() > 0:
            sizes = np.bincount(components.ravel())
            sizes[0] = 0
            return tuple(int(c) for c in np.round(np.argwhere(components == sizes.argmax()).mean(axis=0)))
    return tuple(s // 2 for s in reference.shape)


def _plane(volume: np.ndarray, view: str, point: tuple[int, int, int]) -> np.ndarray:
    """The slice through `point`, transposed for display with the first in-plane axis horizontal."""
    x, y, z = point
    plane = {"axial": volume[:, :, z], "coronal": volume[:, y, :], "sagittal": volume[x, :, :]}[view]
    return plane.T


def _aspect(view: str, spacing: tuple[float, ...]) -> float:
    """Display aspect (vertical / horizontal voxel size) of a plane."""
    sx, sy, sz = spacing
    return {"axial": sy / sx, "coronal": sz / sx, "sagittal": sz / sy}[view]


def overlay_png(images: dict[str, np.ndarray], reference: np.ndarray, prediction: np.ndarray,
                spacing: tuple[float, ...], title: str) -> bytes:
    """Rows: each underlay (e.g. t1c, FLAIR); columns: reference and prediction in axial, coronal, sagittal."""
    point = focus_point(reference, prediction)
    figure = Figure(figsize=(13, 2.4 * len(images) + 0.4))
    axes = figure.subplots(len(images), 2 * len(VIEWS), squeeze=False)
    for row, (name, volume) in zip(axes, images.items()):
        low, high = np.percentile(volume[volume != 0], [1, 99]) if np.any(volume) else (0, 1)
        for column, (view, (labels, source)) in enumerate(
                (v, pair) for v in VIEWS for pair in ((reference, "reference"), (prediction, "prediction"))):
            axis = row[column]
            aspect = _aspect(view, spacing)
            axis.imshow(_plane(volume, view, point), cmap="gray", vmin=low, vmax=high, origin="lower", aspect=aspect)
            axis.imshow(_plane(labels, view, point), cmap=LABEL_COLORS, vmin=0, vmax=4, origin="lower",
                        aspect=aspect, interpolation="nearest")
            axis.set_title(f"{name} {view}: {source}", fontsize=8)
            axis.axis("off")
    cavity = ", blue cavity" if (reference == 4).any() or (prediction == 4).any() else ""
    figure.suptitle(f"{title} (red NETC, green edema, yellow ET{cavity}; slices through {point})", fontsize=9)
    figure.tight_layout()
    return png(figure)

