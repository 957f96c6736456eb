"""Build configs from presets and `section.field=value` overrides; save and load them as YAML."""

from __future__ import annotations

import dataclasses
import math
import re
import types
import typing
from collections.abc import Iterable
from pathlib import Path
from typing import Any, Union

import yaml

from transunet3d.config.presets import PRESETS, preset_overrides
from transunet3d.config.schema import MAX_WHOLE, ExperimentConfig, Section
from transunet3d.errors import ConfigError
from transunet3d.files import atomic_path
from transunet3d.models.registry import spec_from_config
from transunet3d.models.spec import token_shape

# Axial voxel sides that differ by less than this (relative) count as square: a quarter turn then stretches the image
# less than training's scaling augmentation (0.7-1.4) does.
SQUARE_VOXEL_TOLERANCE = 0.01
_SECTIONS = [f.name for f in dataclasses.fields(ExperimentConfig) if dataclasses.is_dataclass(f.default_factory)]
_INT, _FLOAT = "tag:yaml.org,2002:int", "tag:yaml.org,2002:float"


class _SettingsLoader(yaml.SafeLoader):
    """YAML as a settings file means it: integers in decimal only and each key once per mapping.

    YAML 1.1, which PyYAML reads, takes `010` for octal 8, `0x10` for 16 and `1:30` for 90 (base 60); here they
    are text, which the config reads as decimal where it can (`010` is 10) and refuses otherwise. Of two values
    for one key PyYAML keeps the last without a word; here that is an error naming the line.
    """

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict:
        self.flatten_mapping(node)
        seen = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=True)
            if key in seen:
                raise yaml.constructor.ConstructorError(None, None, f"the key {key!r} appears twice",
                                                        key_node.start_mark)
            seen.add(key)
        return super().construct_mapping(node, deep)


_SettingsLoader.yaml_implicit_resolvers = {
    first: [(tag, pattern) for tag, pattern in resolvers if tag not in (_INT, _FLOAT)]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()}
_SettingsLoader.add_implicit_resolver(_INT, re.compile(r"^[-+]?(?:0|[1-9][0-9]*)$"), list("-+0123456789"))
_SettingsLoader.add_implicit_resolver(_FLOAT, re.compile(
    r"^(?:[-+]?(?:[0-9][0-9_]*)\.[0-9_]*(?:[eE][-+]?[0-9]+)?|[-+]?\.[0-9_]+(?:[eE][-+]?[0-9]+)?"
    r"|[-+]?\.(?:inf|Inf|INF)|\.(?:nan|NaN|NAN))$"), list("-+0123456789."))


def read_settings_yaml(text: str) -> Any:
    """The content of a settings file or value (config.yaml, a parameters file, a `--set` value) read by
    `_SettingsLoader`.

    Raises:
        yaml.YAMLError: not valid YAML, or a key twice in one mapping (`yaml_problem` says it in one line).
    """
    return yaml.load(text, Loader=_SettingsLoader)


def yaml_problem(error: yaml.YAMLError) -> str:
    """A YAML error in one line, with the line it is on."""
    mark = getattr(error, "problem_mark", None)
    problem = getattr(error, "problem", None) or str(error).splitlines()[0]
    return f"{problem} (line {mark.line + 1})" if mark is not None else problem


def build_config(preset: str | None = None, overrides: Iterable[str] = ()) -> ExperimentConfig:
    """The config of `preset` (or the defaults) with `--set`-style overrides ("train.lr=1e-3") applied on top."""
    config = ExperimentConfig(preset=preset)
    if preset is not None:
        for key, value in preset_overrides(preset).items():
            set_field(config, key, value)
    for item in overrides:
        key, value = parse_override(item)
        set_field(config, key, value)
    return validate_config(config)


def validate_config(config: ExperimentConfig) -> ExperimentConfig:
    """`config` itself when every number is in its field's range (schema.py) and the networks take its patches.

    Raises:
        ConfigError: "section.field: problem" for the first field that is out of range.
    """
    for section_name in _SECTIONS:  # sections are checked when built; `set_field` may have changed them since
        check_section(getattr(config, section_name))
    _check_patches(config)
    return config


def check_section(section: Section) -> None:
    """Convert every field of `section` to its declared type, as `--set` does (a list to a tuple, an int to a
    float), and check it against its range.

    Raises:
        ConfigError: "section.field: problem" for the first field of another type or out of range.
    """
    hints = typing.get_type_hints(type(section))
    for item in dataclasses.fields(section):
        key = f"{section.section_name()}.{item.name}"
        value = coerce(getattr(section, item.name), hints[item.name], key)
        setattr(section, item.name, value)
        rule = item.metadata.get("range")
        problem = (rule.problem(value) if rule is not None else None) or _too_large(value)
        if problem is not None:
            raise ConfigError(f"{key}: {problem}")


def _too_large(value: Any) -> str | None:
    """Why a whole number (or a tuple of them) is above `MAX_WHOLE`, or None."""
    values = value if isinstance(value, tuple) else (value,)
    if any(isinstance(v, int) and not isinstance(v, bool) and v > MAX_WHOLE for v in values):
        each, shown = ("each ", list(value)) if isinstance(value, tuple) else ("", value)
        return f"must be {each}at most {MAX_WHOLE}, not {shown}"
    return None


def _check_patches(config: ExperimentConfig) -> None:
    """The settings the networks constrain: the model's strides (its spec says which patches they take), the MAE's
    tokens and its decoder's attention heads."""
    problem = spec_from_config(config).patch_problem(config.train.patch_size)
    if problem is not None:
        raise ConfigError(f"train.patch_size: {problem}")
    pretrain = config.pretrain
    try:
        token_shape(pretrain.tokenizer, pretrain.patch_size, pretrain.token_side)
    except ValueError as error:
        raise ConfigError(f"pretrain.patch_size: {error} (pretrain.token_side {pretrain.token_side})") from None
    if pretrain.decoder_dim % pretrain.decoder_heads:
        raise ConfigError(f"pretrain.decoder_dim: must be a multiple of pretrain.decoder_heads "
                          f"({pretrain.decoder_heads}), not {pretrain.decoder_dim}")


def rotation_problem(patch_size: tuple[int, ...], target_spacing: tuple[float, ...] | None) -> str | None:
    """Why test-time quarter turns in the axial plane (`flip+rot`) cannot be used with a model trained on patches of
    `patch_size` at `target_spacing` (None: each case's own grid), or None. A turned window must fit the patch, and
    must show the network voxels like those it was trained on: a quarter turn of 1 x 1.5 mm voxels is an image
    stretched 1.5 times along one axis, which training never showed it (its rotations are in millimetres)."""
    x, y = patch_size[:2]
    if x != y:
        return f"its axial patch is not square ({x} x {y} voxels)"
    if target_spacing is not None and not math.isclose(target_spacing[0], target_spacing[1],
                                                       rel_tol=SQUARE_VOXEL_TOLERANCE):
        return f"its voxels are not square in the axial plane ({target_spacing[0]:g} x {target_spacing[1]:g} mm)"
    return None


def check_rotations(config: ExperimentConfig) -> None:
    """Refuse `flip+rot` in `infer.tta` or `infer.validation_tta` where `rotation_problem` says the model could not
    use it, before a training whose validation would then fail. Checked once the grid is known (`data.target_spacing`
    from the cache), not when a saved config is read: a run saved so can still predict with `--tta flip`.

    Raises:
        ConfigError: naming the field.
    """
    problem = rotation_problem(config.train.patch_size, config.data.target_spacing)
    for field in ("tta", "validation_tta"):
        if getattr(config.infer, field) == "flip+rot" and problem is not None:
            raise ConfigError(f"infer.{field}: flip+rot turns the axial plane by quarter turns, but {problem}; "
                              "use flip")


def parse_override(item: str) -> tuple[str, Any]:
    """Split "section.field=value" and read the value as YAML (so 1e-3, true, [64, 64, 64] get their types)."""
    key, sep, text = item.partition("=")
    if not sep or not key.strip():
        raise ConfigError(f"override {item!r} is not of the form section.field=value")
    try:
        value = read_settings_yaml(text) if text.strip() else ""
    except yaml.YAMLError:
        value = text
    return key.strip(), value


def check_overrides(overrides: Iterable[str]) -> None:
    """Refuse `--set` overrides that are malformed, name an unknown section or give one key twice (the last value
    won without a word), before anything reads them.

    Raises:
        ConfigError: naming the override.
    """
    given: dict[str, str] = {}
    for item in overrides:
        key = parse_override(item)[0]
        section = key.partition(".")[0]
        if section not in _SECTIONS:
            raise ConfigError(f"unknown config section {section!r} in {key!r}; sections: {', '.join(_SECTIONS)}")
        text = item.partition("=")[2].strip()
        if key in given:
            raise ConfigError(f"--set {key} is given twice ({given[key]}, then {text}); give each setting once")
        given[key] = text


def unread_overrides(overrides: Iterable[str], sections: tuple[str, ...]) -> list[str]:
    """The keys of `--set` overrides outside `sections` (those a job reads: `schema.SEGMENTATION_SECTIONS`, ...)."""
    keys = dict.fromkeys(parse_override(item)[0] for item in overrides)
    return [key for key in keys if key.partition(".")[0] not in sections]


def set_field(config: ExperimentConfig, key: str, value: Any) -> None:
    """Set `section.field` on `config`, converting `value` to the field's declared type."""
    section_name, _, field_name = key.partition(".")
    if section_name not in _SECTIONS:
        raise ConfigError(f"unknown config section {section_name!r} in {key!r}; sections: {', '.join(_SECTIONS)}")
    section = getattr(config, section_name)
    hints = typing.get_type_hints(type(section))
    if field_name not in hints:
        raise ConfigError(f"unknown config field {key!r}; fields of {section_name}: {', '.join(hints)}")
    setattr(section, field_name, coerce(value, hints[field_name], key))


def coerce(value: Any, hint: Any, key: str) -> Any:
    """`value` converted to type `hint`, or a ConfigError naming `key`."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        return coerce(value, next(a for a in args if a is not type(None)), key)
    if origin is typing.Literal:
        if value not in args:
            raise ConfigError(f"{key}: must be one of {_choices(args)}, not {value!r}")
        return value
    if origin is tuple:
        return _coerce_tuple(value, args, key)
    return _coerce_scalar(value, hint, key)


def _choices(args: tuple) -> str:
    """The values of a Literal in words; the empty string ("not recorded", e.g. data.axis_order) as "or empty",
    which a plain join would show as nothing."""
    named = ", ".join(str(arg) for arg in args if arg != "")
    return f"{named}, or empty" if "" in args else named


def _coerce_tuple(value: Any, args: tuple, key: str) -> tuple:
    if not isinstance(value, (list, tuple)):
        raise ConfigError(f"{key}: must be a list, not {value!r}")
    if len(args) == 2 and args[1] is Ellipsis:
        return tuple(coerce(v, args[0], key) for v in value)
    if len(value) != len(args):
        raise ConfigError(f"{key}: must have {len(args)} values, not {len(value)}")
    return tuple(coerce(v, a, key) for v, a in zip(value, args))


def _coerce_scalar(value: Any, hint: type, key: str) -> Any:
    if isinstance(value, str) and hint in (int, float):
        value = _number(value)  # YAML 1.1 reads "1e-3" as a string
    if hint is bool:
        if isinstance(value, bool):
            return value
    elif hint is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
    elif hint is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
    elif hint is str and isinstance(value, str):
        return value
    raise ConfigError(f"{key}: must be of type {hint.__name__}, not {value!r}")


def _number(text: str) -> Any:
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    return text


def config_to_dict(config: ExperimentConfig) -> dict[str, Any]:
    """Plain nested dict (tuples as lists), ready for YAML or JSON."""
    return _plain(dataclasses.asdict(config))


def _plain(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


def config_from_dict(data: dict[str, Any]) -> ExperimentConfig:
    """Inverse of `config_to_dict`; unknown keys and wrong types are ConfigErrors."""
    preset = data.get("preset")
    if preset is not None and preset not in PRESETS:
        raise ConfigError(f"preset: {preset!r} is not a preset ({', '.join(PRESETS)}), nor empty")
    config = ExperimentConfig(preset=preset)
    for section_name, section in data.items():
        if section_name == "preset":
            continue
        if not isinstance(section, dict):
            raise ConfigError(f"config section {section_name!r} must be a mapping")
        for field_name, value in section.items():
            set_field(config, f"{section_name}.{field_name}", value)
    return validate_config(config)


def save_config(config: ExperimentConfig, path: str | Path) -> None:
    """Write the resolved config as YAML, atomically."""
    with atomic_path(path) as tmp:
        tmp.write_text(yaml.safe_dump(config_to_dict(config), sort_keys=False))


def load_config(path: str | Path) -> ExperimentConfig:
    """Read a config written by `save_config` (or by hand)."""
    path = Path(path)
    try:
        data = read_settings_yaml(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"{path}: config file does not exist") from None
    except UnicodeDecodeError:
        raise ConfigError(f"{path}: not a text file (a config is YAML text)") from None
    except yaml.YAMLError as error:
        raise ConfigError(f"{path}: not valid YAML ({yaml_problem(error)})") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: a config file must be a mapping of sections")
    missing = [section for section in _SECTIONS if section not in data]
    if missing:
        raise ConfigError(f"{path}: has no {', '.join(missing)} section(s); a saved config holds every section "
                          f"(its settings would silently be the defaults)")
    try:
        return config_from_dict(data)
    except ConfigError as error:
        raise ConfigError(f"{path}: {error}") from None
