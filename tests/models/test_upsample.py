"""Upsample2x computes torch's transposed convolution exactly, by matrix products in CPU inference."""

import pytest
import torch

from transunet3d.models import upsample
from transunet3d.models.cnn import Decoder
from transunet3d.models.precision import cpu_computes_bf16
from transunet3d.models.upsample import Upsample2x, runs_as_matrix_product


def pair(in_channels: int, out_channels: int) -> tuple[Upsample2x, torch.nn.ConvTranspose3d]:
    torch.manual_seed(0)
    reference = torch.nn.ConvTranspose3d(in_channels, out_channels, kernel_size=2, stride=2, bias=False)
    ours = Upsample2x(in_channels, out_channels)
    ours.load_state_dict(reference.state_dict())  # the same parameters, so old checkpoints load
    return ours, reference


@pytest.mark.parametrize("shape", [(1, 6, 3, 4, 5), (3, 5, 2, 2, 2), (2, 16, 8, 7, 6)])
def test_inference_equals_the_transposed_convolution(shape):
    ours, reference = pair(shape[1], 7)
    x = torch.randn(shape)
    with torch.inference_mode():
        assert runs_as_matrix_product(x)
        out, expected = ours(x), reference(x)
    assert out.shape == (shape[0], 7, *(2 * s for s in shape[2:])) and out.is_contiguous()
    torch.testing.assert_close(out, expected, rtol=1e-6, atol=1e-6)


def test_each_input_voxel_becomes_its_weight_block():
    ours, _ = pair(1, 1)
    with torch.no_grad():
        ours.weight.copy_(torch.arange(8.0).view(1, 1, 2, 2, 2))
        x = torch.zeros(1, 1, 2, 3, 2)
        x[0, 0, 1, 2, 0] = 10.0
        out = ours(x)
    assert out[0, 0, 2:4, 4:6, 0:2].tolist() == (10 * torch.arange(8.0).view(2, 2, 2)).tolist()
    assert out.sum() == 10 * 28


def test_training_keeps_torch_kernel_and_its_gradients():
    ours, reference = pair(4, 3)
    x = torch.randn(2, 4, 3, 3, 3, requires_grad=True)
    assert not runs_as_matrix_product(x)
    upstream = torch.randn(2, 3, 6, 6, 6)
    ours(x).backward(upstream)
    grad_x, grad_w = x.grad.clone(), ours.weight.grad.clone()
    x.grad = None
    reference(x).backward(upstream)
    torch.testing.assert_close(grad_x, x.grad)
    torch.testing.assert_close(grad_w, reference.weight.grad)


@pytest.mark.parametrize("shape", [(1, 8, 3, 4, 5), (2, 5, 2, 3, 2)])
def test_channels_last_inputs_give_the_same_sums_channels_last(shape):
    ours, reference = pair(shape[1], 4)
    x = torch.randn(shape).contiguous(memory_format=torch.channels_last_3d)
    with torch.no_grad():
        assert runs_as_matrix_product(x)
        out, expected = ours(x), reference(x.contiguous())
    assert out.is_contiguous(memory_format=torch.channels_last_3d)
    torch.testing.assert_close(out, expected, rtol=1e-6, atol=1e-6)


def test_other_strides_keep_torch_kernel():
    ours, reference = pair(8, 4)
    x = torch.randn(2, 8, 4, 4, 6)[..., ::2]  # neither contiguous nor channels-last
    with torch.no_grad():
        assert not runs_as_matrix_product(x)
        torch.testing.assert_close(ours(x), reference(x))


@pytest.mark.skipif(not cpu_computes_bf16(), reason="this CPU has no bf16 arithmetic")
def test_bf16_autocast_gives_bf16_like_torch():
    ours, reference = pair(16, 8)
    x = torch.randn(2, 16, 5, 4, 3)
    with torch.inference_mode(), torch.autocast("cpu", dtype=torch.bfloat16):
        out, expected = ours(x), reference(x)
    assert out.dtype == expected.dtype == torch.bfloat16
    torch.testing.assert_close(out.float(), expected.float(), rtol=2e-2, atol=2e-2)


@pytest.mark.parametrize("layout", [torch.contiguous_format, torch.channels_last_3d])
def test_write_fills_a_view_slices_at_a_time(layout, monkeypatch):
    monkeypatch.setattr(upsample, "VOXELS_PER_PRODUCT", 24)  # two slices of 3x4 per product: 5 = 2 + 2 + 1
    ours, reference = pair(6, 3)
    x = torch.randn(2, 6, 5, 3, 4).contiguous(memory_format=layout)
    buffer = torch.full((2, 7, 10, 6, 8), -1.0).contiguous(memory_format=layout)
    with torch.no_grad():
        ours.write(x, buffer[:, 2:5])
        expected = reference(x.contiguous())
    torch.testing.assert_close(buffer[:, 2:5], expected, rtol=1e-6, atol=1e-6)
    assert (buffer[:, :2] == -1).all() and (buffer[:, 5:] == -1).all()  # nothing written outside the view


@pytest.mark.parametrize("layout", [torch.contiguous_format, torch.channels_last_3d])
def test_decoder_inference_equals_its_training_path(layout):
    torch.manual_seed(0)
    features = (4, 8, 16)
    decoder = Decoder(features).eval()
    skips = [torch.randn(2, c, 16 // 2**i, 12 // 2**i, 8 // 2**i).contiguous(memory_format=layout)
             for i, c in enumerate(features)]
    with torch.no_grad():
        fast = decoder(list(skips))
    with torch.enable_grad():  # torch.cat and torch's transposed convolution
        expected = decoder(list(skips))
    for out, reference in zip(fast, expected):
        torch.testing.assert_close(out, reference.detach(), rtol=1e-5, atol=1e-5)
