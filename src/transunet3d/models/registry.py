"""Named model variants, timm style (`model_spec("encoder", width="tiny", vit_dropout=0.0)`), and the spec an
experiment config describes. Free of torch, so that building and checking a config does not import it;
`network.create_model` and `network.model_from_config` build the networks."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from transunet3d.errors import ConfigError
from transunet3d.models.spec import TINY, ArchitectureSpec

if TYPE_CHECKING:  # only a type here: the config layer checks its patch sizes against these specs
    from transunet3d.config.schema import ExperimentConfig

_REGISTRY: dict[str, Callable[..., ArchitectureSpec]] = {}


def register_model(name: str):
    """Register a function returning the ArchitectureSpec of variant `name`."""

    def decorate(function: Callable[..., ArchitectureSpec]):
        _REGISTRY[name] = function
        return function

    return decorate


@register_model("unet")
def unet() -> ArchitectureSpec:
    return ArchitectureSpec()


@register_model("encoder")
def encoder() -> ArchitectureSpec:
    return ArchitectureSpec(use_vit=True)


@register_model("decoder")
def decoder() -> ArchitectureSpec:
    return ArchitectureSpec(use_query_decoder=True)


@register_model("both")
def both() -> ArchitectureSpec:
    return ArchitectureSpec(use_vit=True, use_query_decoder=True)


def list_models() -> list[str]:
    return list(_REGISTRY)


def model_spec(name: str, width: str = "full", **overrides: Any) -> ArchitectureSpec:
    """The spec of variant `name` at `width` ("full" or "tiny") with field overrides."""
    if name not in _REGISTRY:
        raise ConfigError(f"unknown model {name!r}; choose one of: {', '.join(_REGISTRY)}")
    if width not in ("full", "tiny"):
        raise ConfigError(f"unknown model width {width!r}; choose full or tiny")
    spec = _REGISTRY[name]()
    if width == "tiny":
        spec = spec.with_overrides(**TINY)
    try:
        return spec.with_overrides(**overrides)
    except TypeError as error:
        raise ConfigError(f"bad model override: {error}") from None


def spec_from_config(config: ExperimentConfig, patch_size: tuple[int, int, int] | None = None) -> ArchitectureSpec:
    """The architecture an experiment describes: its model section, one output per region of its label scheme
    (`data.labels`), for patches of `patch_size` (default its training patches, `train.patch_size`)."""
    # Imported here: the data package imports the config package, whose io checks patches with this registry.
    from transunet3d.data.labels import label_scheme

    model = config.model
    depth = {} if model.vit_depth is None else {"vit_depth": model.vit_depth}
    patch = config.train.patch_size if patch_size is None else patch_size
    spec = model_spec(model.name, model.width, patch_size=tuple(patch),
                      num_regions=len(label_scheme(config.data.labels).regions),
                      deep_supervision=model.deep_supervision, vit_dropout=model.vit_dropout,
                      masked_attention=model.masked_attention, num_queries=model.num_queries,
                      decoder_attention_fp32=model.decoder_attention_fp32, **depth)
    if spec.use_query_decoder and not config.train.cnn_deep_supervision:
        # The CNN heads would get no loss (the decoder-only variant): not computed in training either.
        spec = spec.with_overrides(deep_supervision=False)
    return spec
