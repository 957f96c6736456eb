"""Masked autoencoder: tokenisers, masking, per-token normalisation, the masked-only loss, encoder transfer."""

import pytest
import torch

from transunet3d.errors import ConfigError
from transunet3d.models import create_model
from transunet3d.models.mae import (
    MaskedAutoencoder,
    masked_token_loss,
    normalize_per_token,
    patchify,
    random_masking,
    token_shape,
    unpatchify,
)
from transunet3d.models.registry import model_spec
from transunet3d.models.transfer import transfer_encoder

CROP = (64, 64, 64)


def tiny_mae(tokenizer: str = "slice2d") -> MaskedAutoencoder:
    torch.manual_seed(0)
    return MaskedAutoencoder(model_spec("encoder", "tiny"), CROP, tokenizer, decoder_dim=32, decoder_heads=4)


def test_token_shapes_of_the_paper():
    assert token_shape("slice2d", (128, 128, 128)) == (16, 16, 128)  # 8 x 8 = 64 tokens, z folded in
    assert token_shape("cube3d", (128, 128, 128)) == (16, 16, 16)  # 512 tokens
    assert MaskedAutoencoder(model_spec("encoder", "tiny"), (128, 128, 128), "slice2d").num_tokens == 64
    with pytest.raises(ValueError, match="whole number"):
        token_shape("cube3d", (64, 64, 40))


@pytest.mark.parametrize("tokenizer", ["slice2d", "cube3d"])
def test_patchify_round_trip_and_token_content(tokenizer: str):
    images = torch.randn(2, 4, *CROP)
    token = token_shape(tokenizer, CROP)
    tokens = patchify(images, token)
    assert tokens.shape == (2, 64 * 64 * 64 // (token[0] * token[1] * token[2]), 4 * token[0] * token[1] * token[2])
    assert torch.equal(unpatchify(tokens, token, CROP, 4), images)
    second = images[0, :, 16:32, 0:16, 0:token[2]]  # the grid's second token along x (C order: x, y, z)
    index = (64 // token[1]) * (64 // token[2])
    assert torch.equal(tokens[0, index], second.reshape(-1))


def test_masking_hides_three_quarters_per_sample_reproducibly():
    noise = torch.rand(3, 64, generator=torch.Generator().manual_seed(7))
    kept, mask = random_masking(noise, 0.75)
    assert kept.shape == (3, 16) and mask.sum(dim=1).tolist() == [48, 48, 48]
    assert not mask.gather(1, kept).any()
    assert len({tuple(row.tolist()) for row in mask}) == 3  # a different shuffle per sample
    again = random_masking(torch.rand(3, 64, generator=torch.Generator().manual_seed(7)), 0.75)[1]
    assert torch.equal(mask, again)


def test_targets_are_normalised_per_token():
    pixels = torch.randn(2, 5, 300) * torch.tensor([1.0, 3.0, 10.0, 0.5, 2.0])[None, :, None] + 7
    normalised = normalize_per_token(pixels)
    torch.testing.assert_close(normalised.mean(-1), torch.zeros(2, 5), atol=1e-5, rtol=0)
    torch.testing.assert_close(normalised.std(-1, unbiased=False), torch.ones(2, 5), atol=1e-4, rtol=0)
    assert torch.equal(normalize_per_token(torch.zeros(1, 1, 8)), torch.zeros(1, 1, 8))  # empty background


def test_the_loss_sees_only_hidden_tokens():
    predictions, targets = torch.randn(2, 16, 10), torch.randn(2, 16, 10)
    mask = torch.zeros(2, 16, dtype=torch.bool)
    mask[:, :12] = True
    loss = masked_token_loss(predictions, targets, mask)
    changed = predictions.clone()
    changed[:, 12:] += 100.0  # visible tokens
    assert float(masked_token_loss(changed, targets, mask)) == pytest.approx(float(loss))
    changed[:, 0] += 1.0  # a hidden token
    assert float(masked_token_loss(changed, targets, mask)) > float(loss)
    expected = ((predictions - targets) ** 2).mean(-1)[:, :12].mean()
    assert float(loss) == pytest.approx(float(expected))


@pytest.mark.parametrize("tokenizer", ["slice2d", "cube3d"])
def test_forward_encodes_only_the_visible_tokens(tokenizer: str):
    mae = tiny_mae(tokenizer)
    seen = []
    mae.blocks[0].register_forward_hook(lambda module, args, output: seen.append(args[0].shape))
    output = mae(torch.randn(2, 4, *CROP), torch.rand(2, mae.num_tokens))
    assert seen == [(2, mae.num_tokens // 4, 48)]
    assert output.predictions.shape == output.targets.shape == (2, mae.num_tokens, 4 * 64**3 // mae.num_tokens)
    assert output.mask.sum() == 2 * (mae.num_tokens - mae.num_tokens // 4)


def test_transfer_copies_the_blocks_bitwise_and_nothing_else():
    mae = tiny_mae()
    torch.manual_seed(1)
    network = create_model("encoder", "tiny")
    before = {name: tensor.clone() for name, tensor in network.state_dict().items()}
    loaded = transfer_encoder(network, mae.state_dict())
    after = network.state_dict()
    mae_weights = mae.state_dict()
    assert loaded and all(name.startswith(("vit.blocks.", "vit.norm.")) for name in loaded)
    assert len(loaded) == sum(name.startswith(("blocks.", "norm.")) for name in mae_weights)
    for name in after:
        if name in loaded:
            assert torch.equal(after[name], mae_weights[name[len("vit."):]]), name
        else:
            assert torch.equal(after[name], before[name]), name  # patch embedding, CNN, heads: untouched


def test_transfer_fails_loudly_on_a_mismatch():
    mae = tiny_mae()
    with pytest.raises(ConfigError, match="shape"):
        transfer_encoder(create_model("encoder", "tiny", vit_dim=64), mae.state_dict())
    with pytest.raises(ConfigError, match="missing"):
        transfer_encoder(create_model("encoder", "tiny", vit_depth=3), mae.state_dict())
    with pytest.raises(ConfigError, match="no ViT"):
        transfer_encoder(create_model("unet", "tiny"), mae.state_dict())
