"""InstanceNorm3d's channels-last path computes torch's instance norm and its gradients on CPU fp32 inputs,
channels-last in and out, in place when asked in inference."""

import pytest
import torch
from torch import nn

from transunet3d.models import norm
from transunet3d.models.norm import InstanceNorm3d, reads_channels_last

CHANNELS_LAST = torch.channels_last_3d


def pair(channels: int, affine: bool = True) -> tuple[InstanceNorm3d, nn.InstanceNorm3d]:
    torch.manual_seed(0)
    reference = nn.InstanceNorm3d(channels, eps=1e-5, affine=affine)
    if affine:
        with torch.no_grad():
            reference.weight.uniform_(0.5, 1.5)
            reference.bias.normal_()
    ours = InstanceNorm3d(channels, eps=1e-5, affine=affine)
    ours.load_state_dict(reference.state_dict())  # the same parameters, so checkpoints load either way
    return ours, reference


@pytest.mark.parametrize(("shape", "affine"), [((1, 6, 9, 8, 7), True), ((3, 5, 4, 6, 5), True),
                                               ((2, 4, 5, 5, 5), False)])
def test_channels_last_inference_equals_torch_within_float32(shape, affine, monkeypatch):
    monkeypatch.setattr(norm, "ROWS_PER_BLOCK", 37)  # several blocks, the last one partial
    ours, reference = pair(shape[1], affine)
    x = (torch.randn(shape, dtype=torch.float64) * 2 + 5)  # far from zero mean: cancellation would show
    expected = reference.double()(x)
    with torch.no_grad():
        cl = x.float().contiguous(memory_format=CHANNELS_LAST)
        assert reads_channels_last(cl)
        out = ours(cl)
    assert out.is_contiguous(memory_format=CHANNELS_LAST) and out.dtype == torch.float32
    torch.testing.assert_close(out.double(), expected, rtol=0, atol=1e-5)


def test_inplace_overwrites_its_input_and_the_default_does_not():
    ours, _ = pair(4)
    x = torch.randn(2, 4, 3, 4, 5).contiguous(memory_format=CHANNELS_LAST)
    before = x.clone()
    with torch.no_grad():
        out = ours(x)
        assert torch.equal(x, before) and out.data_ptr() != x.data_ptr()
        ours.inplace = True
        same = ours(x)
    assert same.data_ptr() == x.data_ptr()
    torch.testing.assert_close(same, out)


@pytest.mark.parametrize(("shape", "affine"), [((1, 6, 9, 8, 7), True), ((3, 5, 4, 6, 5), True),
                                               ((2, 4, 5, 5, 5), False)])
def test_channels_last_training_gradients_equal_torchs_within_float32(shape, affine, monkeypatch):
    monkeypatch.setattr(norm, "ROWS_PER_BLOCK", 37)
    ours, reference = pair(shape[1], affine)
    reference.double()
    x = torch.randn(shape, dtype=torch.float64) * 2 + 5
    upstream = torch.randn(shape, dtype=torch.float64)
    expected_input = x.clone().requires_grad_()
    expected = reference(expected_input)
    expected.backward(upstream)
    cl = x.float().contiguous(memory_format=CHANNELS_LAST).requires_grad_()
    out = ours(cl)
    # a channels-last gradient arriving, as from the next channels-last layer, leaves channels-last
    out.backward(upstream.float().contiguous(memory_format=CHANNELS_LAST))
    assert out.is_contiguous(memory_format=CHANNELS_LAST) and cl.grad.is_contiguous(memory_format=CHANNELS_LAST)
    torch.testing.assert_close(out.double(), expected, rtol=0, atol=1e-5)
    torch.testing.assert_close(cl.grad.double(), expected_input.grad, rtol=0, atol=1e-5)
    if affine:
        torch.testing.assert_close(ours.weight.grad.double(), reference.weight.grad, rtol=1e-5, atol=1e-4)
        torch.testing.assert_close(ours.bias.grad.double(), reference.bias.grad, rtol=1e-5, atol=1e-4)


def test_training_leaves_its_input_alone_even_when_inplace():
    ours, _ = pair(4)
    ours.inplace = True
    x = torch.randn(2, 4, 3, 4, 5).contiguous(memory_format=CHANNELS_LAST).requires_grad_()
    before = x.detach().clone()
    out = ours(x)
    out.sum().backward()
    assert torch.equal(x.detach(), before) and out.data_ptr() != x.data_ptr()


def test_a_contiguous_upstream_gradient_gives_torchs_gradient():
    ours, reference = pair(3)
    x = torch.randn(2, 3, 4, 3, 5).contiguous(memory_format=CHANNELS_LAST).requires_grad_()
    reference_input = x.detach().clone().requires_grad_()
    upstream = torch.randn(2, 3, 4, 3, 5)  # contiguous, as a loss's gradient may arrive
    ours(x).backward(upstream)
    reference(reference_input).backward(upstream)
    torch.testing.assert_close(x.grad, reference_input.grad, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("case", ["contiguous", "contiguous training", "bf16"])
def test_other_inputs_keep_torch_kernel(case):
    ours, reference = pair(3)
    x = torch.randn(2, 3, 4, 4, 4)
    if case == "bf16":
        x = x.contiguous(memory_format=CHANNELS_LAST).bfloat16()
        ours, reference = ours.bfloat16(), reference.bfloat16()
    with torch.set_grad_enabled(case == "contiguous training"):
        assert not reads_channels_last(x)
        torch.testing.assert_close(ours(x), reference(x), rtol=0, atol=0)
