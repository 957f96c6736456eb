"""The convolutions stay correct under bf16 autocast on the CPU, where a oneDNN kernel is wrong for tiny inputs."""

import pytest
import torch

from transunet3d.models.conv import Conv3d, needs_fp32
from transunet3d.models.precision import cpu_computes_bf16

bf16_cpu = pytest.mark.skipif(not cpu_computes_bf16(), reason="this CPU has no bf16 arithmetic")


def weight_gradient(conv: torch.nn.Conv3d, x: torch.Tensor, upstream: torch.Tensor, bf16: bool) -> torch.Tensor:
    torch.full((2, 48, 8, 8, 8), 1e3).sum()  # leave large values in freed memory, as a training step does
    conv.zero_grad()
    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
        out = conv(x)
    out.float().backward(upstream)
    return conv.weight.grad.clone()


@bf16_cpu
@pytest.mark.parametrize("shape", [(2, 2, 2), (2, 4, 4), (1, 3, 3)])
def test_bf16_weight_gradients_of_tiny_inputs_match_fp32(shape):
    torch.manual_seed(0)
    conv = Conv3d(48, 48, 3, padding=1).to(memory_format=torch.channels_last_3d)
    for _ in range(20):
        x = torch.randn(2, 48, *shape).contiguous(memory_format=torch.channels_last_3d)
        upstream = torch.randn(2, 48, *shape)
        reference = weight_gradient(conv, x, upstream, bf16=False)
        gradient = weight_gradient(conv, x, upstream, bf16=True)
        assert torch.isfinite(gradient).all()
        torch.testing.assert_close(gradient, reference)  # fp32 on these inputs: the same numbers


@bf16_cpu
def test_larger_inputs_keep_bf16():
    conv = Conv3d(8, 8, 3, padding=1)
    x = torch.randn(1, 8, 4, 4, 4)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        assert conv(x).dtype == torch.bfloat16
        assert conv(x[:, :, :2]).dtype == torch.float32


def test_fp32_is_needed_only_under_cpu_autocast_for_tiny_inputs():
    tiny, small = torch.zeros(1, 2, 2, 5, 5), torch.zeros(1, 2, 3, 3, 3)
    assert not needs_fp32(tiny)  # no autocast: nothing to avoid
    with torch.autocast("cpu", dtype=torch.bfloat16):
        assert needs_fp32(tiny) and not needs_fp32(small)


def test_state_dict_is_that_of_nn_conv3d():
    torch.manual_seed(0)
    plain = torch.nn.Conv3d(3, 5, 3, padding=1)
    ours = Conv3d(3, 5, 3, padding=1)
    ours.load_state_dict(plain.state_dict())
    x = torch.randn(1, 3, 6, 6, 6)
    torch.testing.assert_close(ours(x), plain(x))
