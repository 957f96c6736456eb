"""Checkpoints: weights as safetensors, trainer state as a plain-tensor file; both written atomically.

Reading them back, a missing, empty, truncated or foreign file is a `UserError` naming it (a run folder damaged by
hand or by a copy), never a library's traceback.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save

from transunet3d.errors import UserError
from transunet3d.files import atomic_path

WEIGHTS, STATE = "weights.safetensors", "state.pt"  # in each checkpoint folder (where they are: runs/layout.py)


def save_checkpoint(folder: Path, model: torch.nn.Module, state: dict[str, Any]) -> None:
    """Write `folder`/weights.safetensors and state.pt; the state goes last and marks the checkpoint complete."""
    folder.mkdir(parents=True, exist_ok=True)
    weights = {name: tensor.detach().contiguous().cpu() for name, tensor in model.state_dict().items()}
    with atomic_path(folder / WEIGHTS) as tmp:  # safetensors' save_file would leave its own temporary on a kill
        tmp.write_bytes(save(weights))
    with atomic_path(folder / STATE) as tmp:
        torch.save(state, tmp)


def load_checkpoint(folder: Path, model: torch.nn.Module) -> dict[str, Any]:
    """Load the weights into `model` and return the trainer state (loaded with weights_only=True)."""
    weights = read_weights(folder)
    check_finite_weights(weights, folder / WEIGHTS)
    try:
        model.load_state_dict(weights)
    except RuntimeError as error:
        raise UserError(f"{folder / WEIGHTS}: does not fit the model ({str(error).strip().splitlines()[0]})") from None
    return read_state(folder)


def check_finite_weights(weights: dict[str, torch.Tensor], path: Path) -> None:
    """Refuse weights that hold NaN or inf (a diverged training): predictions from them would be empty, and a
    resumed training would go on from them, both without an error."""
    broken = [name for name, tensor in weights.items()
              if tensor.is_floating_point() and not torch.isfinite(tensor).all()]
    if broken:
        raise UserError(f"{path}: {len(broken)} of {len(weights)} tensors hold NaN or infinite values "
                        "(the training diverged)")


def read_weights(folder: Path) -> dict[str, torch.Tensor]:
    """The tensors of `folder`/weights.safetensors.

    Raises:
        UserError: the file is missing, or not a complete safetensors file (empty, truncated, a pickle, ...).
    """
    path = folder / WEIGHTS
    try:
        return load_file(str(path))
    except FileNotFoundError:
        raise UserError(f"{path}: missing from the checkpoint") from None
    except SafetensorError as error:
        reason = str(error).removeprefix("Error while deserializing header: ")
        raise UserError(f"{path}: damaged, not a complete safetensors file ({reason})") from None


def read_state(folder: Path) -> dict[str, Any]:
    """The trainer state of `folder`/state.pt (epochs, optimizer, RNG), loaded with weights_only=True.

    Raises:
        UserError: the file is missing, damaged (empty, truncated, not written by torch.save) or holds no
            trainer counters.
    """
    path = folder / STATE
    try:
        state = torch.load(path, weights_only=True)
    except FileNotFoundError:
        raise UserError(f"{path}: missing from the checkpoint") from None
    except EOFError:
        raise UserError(f"{path}: damaged, the file is empty") from None
    except Exception:
        raise UserError(f"{path}: damaged, not a complete checkpoint state written by torch.save") from None
    if not isinstance(state, dict) or not isinstance(state.get("trainer"), dict) or "epoch" not in state["trainer"]:
        raise UserError(f"{path}: not a checkpoint state (it holds no trainer counters)")
    return state


def is_complete(folder: Path) -> bool:
    return (folder / WEIGHTS).exists() and (folder / STATE).exists()
