"""transunet3d: 3D-TransUNet for brain metastases segmentation (BraTS-METS), end to end."""

__version__ = "0.1.0"
