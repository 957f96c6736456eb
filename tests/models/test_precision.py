"""`auto` precision: bf16 where the hardware computes it, fp32 elsewhere; explicit settings pass through."""

import pytest
import torch

from transunet3d.models import precision
from transunet3d.models.precision import autocast, resolve_precision

CPU, CUDA = torch.device("cpu"), torch.device("cuda")


@pytest.mark.parametrize("native", [True, False])
def test_auto_follows_the_hardware(monkeypatch, native):
    monkeypatch.setattr(precision, "cpu_computes_bf16", lambda: native)
    assert resolve_precision("auto", CPU) == ("bf16" if native else "fp32")
    assert resolve_precision("auto", CUDA) == "bf16"
    assert resolve_precision("auto", torch.device("mps")) == "fp32"


@pytest.mark.parametrize("setting", ["fp32", "bf16", "fp16"])
def test_explicit_settings_pass_through(monkeypatch, setting):
    monkeypatch.setattr(precision, "cpu_computes_bf16", lambda: False)
    assert resolve_precision(setting, CPU) == setting


def test_autocast_casts_matmuls_only_for_reduced_precision():
    a = torch.randn(4, 4)
    with autocast("bf16", CPU):
        assert (a @ a).dtype == torch.bfloat16
    with autocast("fp32", CPU):
        assert (a @ a).dtype == torch.float32
