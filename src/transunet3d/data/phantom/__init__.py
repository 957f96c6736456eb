"""Synthetic BraTS-METS-like cases on the MNI152 anatomy, for demos and tests without the real dataset."""

from transunet3d.data.phantom.generate import Phantom, PhantomSpec, generate_phantom, write_phantom, write_phantoms

__all__ = ["Phantom", "PhantomSpec", "generate_phantom", "write_phantom", "write_phantoms"]
