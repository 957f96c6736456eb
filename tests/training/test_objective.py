"""The training objective of each variant: which heads and which set-loss terms enter, with which weights."""

import pytest
import torch

from transunet3d.config import build_config
from transunet3d.losses import SetLossWeights, deep_set_loss, deep_supervision_weights, region_loss, set_loss
from transunet3d.models.network import ModelOutput
from transunet3d.training.objective import training_loss


def _output(with_queries: bool = True) -> tuple[ModelOutput, torch.Tensor]:
    """Three CNN heads (8^3, 4^3, 2^3), two query predictions, and targets with a tumour block."""
    generator = torch.Generator().manual_seed(0)
    targets = torch.zeros(1, 3, 8, 8, 8, dtype=torch.uint8)
    targets[:, :, 2:6, 2:6, 2:6] = 1
    heads = [torch.randn(1, 3, s, s, s, generator=generator) for s in (8, 4, 2)]
    classes = [torch.randn(1, 5, 4, generator=generator) for _ in range(2)] if with_queries else []
    masks = [torch.randn(1, 5, 8, 8, 8, generator=generator) for _ in range(2)] if with_queries else []
    return ModelOutput(heads[0], heads, classes, masks), targets


def test_cnn_models_train_every_head_with_nnunets_weights():
    output, targets = _output(with_queries=False)
    weights = deep_supervision_weights(3)
    expected = sum(w * region_loss(h, targets[:, :, ::8 // h.shape[-1], ::8 // h.shape[-1], ::8 // h.shape[-1]])
                   for w, h in zip(weights, output.deep_supervision))
    assert training_loss(output, targets, build_config("tiny").train).item() == pytest.approx(expected.item())


def test_decoder_only_trains_the_set_loss_alone():
    output, targets = _output()
    expected = deep_set_loss(output.class_logits, output.mask_logits, targets.bool())
    loss = training_loss(output, targets, build_config("tiny-decoder").train)
    assert loss.item() == pytest.approx(expected.item(), rel=1e-6)


@pytest.mark.parametrize(("preset", "heads"), [("tiny-decoder", 0), ("tiny-both", 5), ("tiny", 5)])
def test_the_cnn_heads_are_computed_in_training_only_where_they_get_a_loss(preset: str, heads: int):
    """The official decoder-only model has no CNN heads (`disable_ds`); ours keeps them in its weights but the
    decoder-only variant does not compute them in training, where nothing would use them."""
    from transunet3d.models.network import model_from_config

    model = model_from_config(build_config(preset)).train()
    with torch.no_grad():
        output = model(torch.zeros(1, 4, 64, 64, 64))
    assert len(output.deep_supervision) == heads and len(model.heads) == 5


def test_encoder_plus_decoder_follows_the_official_weighting():
    """w0 x set loss + w_i x (BCE + Dice) / 2 for the heads below full resolution; the full-resolution head
    is replaced by the query decoder (nnUNetTrainerV2_DDP.compute_loss with disable_ds False)."""
    output, targets = _output()
    w = deep_supervision_weights(3)
    queries = deep_set_loss(output.class_logits, output.mask_logits, targets.bool())
    expected = w[0] * queries + w[1] * 0.5 * region_loss(output.deep_supervision[1], targets[:, :, ::2, ::2, ::2])
    loss = training_loss(output, targets, build_config("tiny-both").train)
    assert loss.item() == pytest.approx(expected.item(), rel=1e-6)


def test_the_full_resolution_head_gets_no_gradient_but_takes_part():
    output, targets = _output()
    output.deep_supervision[0].requires_grad_(True)
    training_loss(output, targets, build_config("tiny-both").train).backward()
    assert output.deep_supervision[0].grad is not None and not output.deep_supervision[0].grad.any()


def test_the_objective_takes_the_no_object_weight_from_the_config():
    output, targets = _output()
    losses = {}
    for weight in (1.0, 0.1):
        config = build_config("tiny-decoder", [f"train.no_object_weight={weight}"]).train
        losses[weight] = training_loss(output, targets, config).item()
        each = [set_loss(c, m, targets.bool(), SetLossWeights(0.7, 0.3, weight))
                for c, m in zip(output.class_logits, output.mask_logits)]
        assert losses[weight] == pytest.approx((0.5 * each[1] + 0.5 * each[0]).item(), rel=1e-6)
    assert losses[1.0] != pytest.approx(losses[0.1], rel=1e-3)
