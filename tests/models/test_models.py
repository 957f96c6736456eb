"""Every registered model, timm style: shapes, gradients, determinism, sizes, serialisation, compile."""

import copy

import pytest
import torch
from safetensors.torch import load_file, save_file

from transunet3d.config import build_config
from transunet3d.models import create_model, list_models, model_from_config, model_info
from transunet3d.models.cnn import Decoder, Encoder
from transunet3d.models.network import ModelOutput

MODELS = list_models()
QUERY_MODELS = {"decoder", "both"}


def tiny(name: str, **overrides):
    torch.manual_seed(0)
    return create_model(name, "tiny", **overrides)


def test_registry_holds_the_four_variants():
    assert MODELS == ["unet", "encoder", "decoder", "both"]


@pytest.mark.parametrize("name", MODELS)
@pytest.mark.parametrize("batch, shape", [(1, (64, 64, 64)), (2, (64, 96, 64))])
def test_training_outputs_have_the_contract_shapes(name, batch, shape):
    model = tiny(name).train()
    out = model(torch.randn(batch, 4, *shape))
    assert isinstance(out, ModelOutput)
    assert out.logits.shape == (batch, 3, *shape)
    assert [tuple(d.shape[2:]) for d in out.deep_supervision] == [
        tuple(s // 2**i for s in shape) for i in range(5)]
    if name in QUERY_MODELS:
        assert len(out.class_logits) == len(out.mask_logits) == 4  # before the first layer and after each of 3
        assert out.class_logits[-1].shape == (batch, 8, 4)
        assert out.mask_logits[-1].shape == (batch, 8, *shape)
    else:
        assert out.class_logits == out.mask_logits == []
        torch.testing.assert_close(out.logits, out.deep_supervision[0])


@pytest.mark.parametrize("name", MODELS)
def test_inference_mode_skips_deep_supervision_and_is_deterministic(name):
    model = tiny(name).eval()
    x = torch.randn(1, 4, 64, 64, 64)
    with torch.no_grad():
        first, second = model(x), model(x)
    assert first.deep_supervision == []
    torch.testing.assert_close(first.logits, second.logits, rtol=0, atol=0)


@pytest.mark.parametrize("name", MODELS)
def test_backward_reaches_every_parameter_with_finite_gradients(name):
    model = tiny(name).train()
    out = model(torch.randn(1, 4, 64, 64, 64))
    loss = out.logits.mean() + sum(d.mean() for d in out.deep_supervision)
    loss = loss + sum(c.mean() for c in out.class_logits) + sum(m.mean() for m in out.mask_logits)
    loss.backward()
    for parameter_name, parameter in model.named_parameters():
        assert parameter.grad is not None, parameter_name
        assert torch.isfinite(parameter.grad).all(), parameter_name


@pytest.mark.parametrize("name, parameters, gflops", [
    ("unet", 31.2e6, 966), ("encoder", 116.8e6, 977), ("decoder", 34.1e6, 1113),
])
def test_full_size_matches_the_official_architecture(name, parameters, gflops):
    info = model_info(name, "full", patch=128)
    assert info.parameters == pytest.approx(parameters, rel=0.02)
    assert info.gflops == pytest.approx(gflops, rel=0.03)


def test_vit_position_embedding_follows_the_patch_size():
    model = tiny("encoder").eval()
    assert model.vit.position.shape[2:] == (2, 2, 2)  # 64^3 patches -> 2^3 bottleneck
    with torch.no_grad():
        out = model(torch.randn(1, 4, 128, 64, 96))  # another grid: the embedding is interpolated
    assert out.logits.shape == (1, 3, 128, 64, 96)


@pytest.mark.parametrize("name", MODELS)
def test_state_dict_round_trip_through_safetensors(name, tmp_path):
    model = tiny(name).eval()
    save_file(model.state_dict(), tmp_path / "model.safetensors")
    other = create_model(name, "tiny").eval()
    other.load_state_dict(load_file(tmp_path / "model.safetensors"))
    x = torch.randn(1, 4, 64, 64, 64)
    with torch.no_grad():
        torch.testing.assert_close(model(x).logits, other(x).logits, rtol=0, atol=0)


@pytest.mark.parametrize("name", MODELS)
def test_bf16_autocast_and_channels_last(name):
    model = tiny(name).eval()
    # two samples: channels-last inference normalises each on its own; 64x32x32 keeps two bottleneck voxels
    x = torch.randn(2, 4, 64, 32, 32)
    with torch.no_grad():
        exact = copy.deepcopy(model).double()(x.double()).logits.double().sigmoid()
        reference = model(x).logits.sigmoid()
        with torch.autocast("cpu", dtype=torch.bfloat16):  # one sample: 5 s per variant without bf16 units
            low = model(x[:1]).logits.float().sigmoid()
        fast = model.to(memory_format=torch.channels_last_3d)(x.to(memory_format=torch.channels_last_3d))
    assert torch.isfinite(low).all()
    assert (low - reference[:1]).abs().mean() < 0.02
    # Both float32 layouts against float64: float32 rounding through the ViT reaches 8e-5 on an AVX-512 CPU (the
    # two layouts differed by 1.2e-4 there, so comparing them with each other at 1e-4 failed); a wrong norm would
    # be off by hundredths.
    for output in (reference, fast.logits.sigmoid()):
        torch.testing.assert_close(output.double(), exact, rtol=0, atol=2e-4)


def test_region_probability_combines_class_and_mask():
    from transunet3d.models.query_decoder import region_probabilities

    classes = torch.tensor([[[10.0, -10, -10, -10], [-10, -10, -10, 10.0]]])  # query 0: WT; query 1: no object
    masks = torch.full((1, 2, 1, 1, 2), -10.0)
    masks[0, 0, 0, 0, 1] = 10.0
    probability = region_probabilities(classes, masks)
    assert probability.shape == (1, 3, 1, 1, 2)
    assert probability[0, 0, 0, 0, 1] > 0.99 and probability[0, 0, 0, 0, 0] < 0.01
    assert probability[0, 1:].max() < 0.01


def test_masked_attention_is_an_option_that_changes_the_result():
    x = torch.randn(1, 4, 64, 64, 64)
    plain, masked = tiny("decoder").eval(), tiny("decoder", masked_attention=True).eval()
    with torch.no_grad():
        a, b = plain(x), masked(x)
    torch.testing.assert_close(a.class_logits[0], b.class_logits[0])  # same weights, same first prediction
    assert not torch.allclose(a.class_logits[-1], b.class_logits[-1])


def _decoder_attentions(model) -> list:
    from transunet3d.models.query_decoder import Attention

    return [m for m in model.modules() if isinstance(m, Attention)]


@pytest.mark.parametrize("float32", [True, False])
def test_query_decoder_attention_runs_in_fp32_under_autocast_when_asked(float32):
    model = tiny("decoder", decoder_attention_fp32=float32).eval()
    attention = _decoder_attentions(model)[0]
    x = torch.randn(2, 10, attention.q.in_features)
    with torch.no_grad():
        reference = attention(x, x, x)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            mixed = attention(x.bfloat16(), x.bfloat16(), x.bfloat16())
    assert mixed.dtype == (torch.float32 if float32 else torch.bfloat16)
    if float32:  # only the bf16 rounding of the inputs remains
        torch.testing.assert_close(mixed, attention(x.bfloat16().float(), x.bfloat16().float(),
                                                    x.bfloat16().float()), rtol=1e-5, atol=1e-5)
    assert (mixed.float() - reference).abs().max() < 0.1


def test_query_models_default_to_fp32_attention():
    for preset in ("paper-decoder", "paper-both", "tiny-decoder", "tiny-both"):
        config = build_config(preset)
        assert config.model.decoder_attention_fp32
        model = model_from_config(config) if "tiny" in preset else None
        if model is not None:
            assert all(a.float32 for a in _decoder_attentions(model))
    off = build_config("tiny-decoder", ["model.decoder_attention_fp32=false"])
    assert not any(a.float32 for a in _decoder_attentions(model_from_config(off)))


def test_vit_depth_gives_the_official_encoder_plus_decoder():
    """configs/Brats/encoder_plus_decoder.yaml has a 1-layer ViT: 41.7M parameters instead of 119.7M."""
    config = build_config("paper-both", ["model.vit_depth=1"])
    with torch.device("meta"):
        model = model_from_config(config)
    assert len(model.vit.blocks) == 1
    assert sum(p.numel() for p in model.parameters()) == pytest.approx(41.71e6, rel=1e-3)
    assert model_from_config(build_config("tiny-both")).spec.vit_depth == 2


def test_model_from_experiment_config():
    config = build_config("tiny-both", ["model.num_queries=5", "model.vit_dropout=0.0"])
    model = model_from_config(config)
    assert model.spec.use_vit and model.spec.use_query_decoder
    assert model.spec.num_queries == 5 and model.spec.patch_size == (64, 64, 64)


@pytest.mark.parametrize("name", MODELS)
def test_the_2025_scheme_gives_every_model_one_output_per_region(name):
    config = build_config("tiny", [f"model.name={name}", "data.labels=brats-mets-2025"])
    torch.manual_seed(0)
    model = model_from_config(config).train()
    assert model.spec.num_regions == 4
    out = model(torch.randn(1, 4, 64, 64, 64))
    assert out.logits.shape == (1, 4, 64, 64, 64)
    assert all(d.shape[:2] == (1, 4) for d in out.deep_supervision)
    assert all(c.shape == (1, config.model.num_queries, 5) for c in out.class_logits)  # 4 regions, no-object
    assert (name in QUERY_MODELS) == bool(out.class_logits)


# Each model is captured as one graph (fullgraph: no graph break) through Dynamo and AOT autograd: both holds every
# block of the U-Net and every part of encoder and decoder. Inductor's code generation is not built here: on 2 CPU
# cores a cold build costs a minute for both and 27 s for the CNN body alone, and compiling pays on a GPU, where the
# compiled speed is to be measured.
@pytest.mark.parametrize("name", ["unet", "both"])
def test_torch_compile_captures_each_model_in_one_graph_that_matches_eager(name: str):
    model = tiny(name).eval()
    x = torch.randn(1, 4, 64, 64, 64)
    with torch.no_grad():
        eager = model(x).logits.sigmoid()
        compiled = torch.compile(model, backend="aot_eager", fullgraph=True)(x).logits.sigmoid()
    torch.testing.assert_close(compiled, eager, rtol=0, atol=1e-4)


def test_the_decoder_frees_as_it_goes_and_computes_what_stage_calls_compute():
    torch.manual_seed(0)
    features = (4, 8, 16)
    encoder, decoder = Encoder(2, features).eval(), Decoder(features).eval()
    with torch.inference_mode():
        skips = encoder(torch.randn(1, 2, 16, 16, 16))
        expected, x = [], skips[-1]
        for upsample, block, skip in zip(decoder.upsample, decoder.stages, reversed(skips[:-1])):
            x = block(torch.cat([upsample(x), skip], dim=1))
            expected.append(x)
        consumed = list(skips)
        outputs = decoder(consumed)
    assert consumed == []  # every skip dropped once used
    assert all(torch.equal(a, b) for a, b in zip(outputs, expected, strict=True))
