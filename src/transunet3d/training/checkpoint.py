"""Checkpoints: weights as safetensors, trainer state as a plain-tensor file; both written atomically."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file

from transunet3d.files import atomic_path

WEIGHTS, STATE = "weights.safetensors", "state.pt"  # in each checkpoint folder (where they are: runs/layout.py)


def save_checkpoint(folder: Path, model: torch.nn.Module, state: dict[str, Any]) -> None:
    """Write `folder`/weights.safetensors and state.pt; the state goes last and marks the checkpoint complete."""
    folder.mkdir(parents=True, exist_ok=True)
    weights = {name: tensor.detach().contiguous().cpu() for name, tensor in model.state_dict().items()}
    with atomic_path(folder / WEIGHTS) as tmp:
        save_file(weights, str(tmp))
    with atomic_path(folder / STATE) as tmp:
        torch.save(state, tmp)


def load_checkpoint(folder: Path, model: torch.nn.Module) -> dict[str, Any]:
    """Load the weights into `model` and return the trainer state (loaded with weights_only=True)."""
    model.load_state_dict(load_file(str(folder / WEIGHTS)))
    return torch.load(folder / STATE, weights_only=True)


def is_complete(folder: Path) -> bool:
    return (folder / WEIGHTS).exists() and (folder / STATE).exists()
