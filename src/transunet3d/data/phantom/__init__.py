"""Synthetic BraTS-METS-like cases on the MNI152 anatomy, for demos and tests without the real dataset."""

from transunet3d.data.phantom.generate import Phantom, PhantomSpec, generate_phantom, write_phantom, write_phantoms
from transunet3d.data.phantom.variants import Variant, apply_variant

__all__ = ["Phantom", "PhantomSpec", "Variant", "apply_variant", "generate_phantom", "write_phantom",
           "write_phantoms"]
