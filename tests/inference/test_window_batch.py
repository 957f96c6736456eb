"""How many windows go through the network together, and in which memory layout."""

from pathlib import Path

import pytest
import torch

from transunet3d.inference.window_batch import (
    CPU_BATCH_FEATURES,
    choose_window_batch,
    network_layout,
    window_bytes,
)
from transunet3d.models.registry import model_spec

CPU = torch.device("cpu")
PLENTY = 1 << 40


def test_channels_last_except_reduced_precision_on_the_cpu():
    assert network_layout(CPU, "fp32") == torch.channels_last_3d
    assert network_layout(CPU, "bf16") == torch.contiguous_format
    assert network_layout(torch.device("cuda"), "bf16") == torch.channels_last_3d
    assert network_layout(torch.device("cuda"), "fp32") == torch.channels_last_3d


def test_a_full_size_window_runs_alone_on_the_cpu_and_small_ones_in_batches():
    full = model_spec("unet", "full", patch_size=(128, 128, 128))
    # One full-resolution feature map of a 128^3 window is 32 x 128^3 x 4 B = 256 MiB: batching stops paying.
    assert CPU_BATCH_FEATURES == 32 * 128**3 * 4
    assert choose_window_batch(full, (128,) * 3, 4, CPU, PLENTY).size == 1
    assert choose_window_batch(full, (64,) * 3, 4, CPU, PLENTY).size == 4
    tiny = model_spec("encoder", "tiny", patch_size=(64, 64, 64))
    assert choose_window_batch(tiny, (64,) * 3, 4, CPU, PLENTY).size == 4


def test_the_budget_caps_the_batch_and_one_window_runs_even_over_it():
    spec = model_spec("unet", "full", patch_size=(64, 64, 64))
    one = window_bytes(spec, (64,) * 3, 4)
    assert one == int(9.0 * 32 * 64**3 * 4)  # the U-Net's measured factor over one feature map
    assert choose_window_batch(spec, (64,) * 3, 4, CPU, 3 * one + 1).size == 3
    starved = choose_window_batch(spec, (64,) * 3, 4, CPU, one // 2)
    assert (starved.size, starved.over_budget) == (1, True)


def test_half_precision_halves_the_estimate_and_query_masks_raise_it():
    unet = model_spec("unet", "full", patch_size=(128, 128, 128))
    decoder = model_spec("decoder", "full", patch_size=(128, 128, 128))
    assert window_bytes(unet, (128,) * 3, 2) * 2 == window_bytes(unet, (128,) * 3, 4)
    assert window_bytes(decoder, (128,) * 3, 4) > 2 * window_bytes(unet, (128,) * 3, 4)


@pytest.mark.parametrize("given, expected", [(None, 4), (3, 3)])
def test_the_predictor_takes_a_set_batch_or_sizes_one(given, expected):
    from transunet3d.config import build_config
    from transunet3d.config.schema import InferConfig
    from transunet3d.inference.predictor import Predictor
    from transunet3d.inference.trained import TrainedModel
    from transunet3d.models import model_from_config
    from transunet3d.runs.layout import ModelFolder

    config = build_config("tiny")
    model = TrainedModel(model_from_config(config).eval(), config, Path("."), config.loop.epochs, ModelFolder("."))
    predictor = Predictor([model], InferConfig(batch_windows=given, max_memory_gb=64.0))
    assert predictor.window_batches[0].size == expected
