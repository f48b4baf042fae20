"""speechssl.config: YAML <-> nested dataclasses, typed overrides, clear errors."""

from __future__ import annotations

import argparse
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal, Optional

import pytest

from speechssl.config import (
    ConfigError,
    add_config_args,
    apply_overrides,
    config_to_yaml,
    load_config,
    resolve_config,
    save_config,
)


@dataclass
class Optim:
    lr: float = 5e-4
    betas: tuple[float, float] = (0.9, 0.98)
    warmup_steps: int = 100


@dataclass
class Model:
    name: Literal["hubert", "wavlm"] = "hubert"
    layers: int = 2
    dropout: Optional[float] = None


@dataclass
class Train:
    model: Model = field(default_factory=Model)
    optim: Optim = field(default_factory=Optim)
    languages: list[str] = field(default_factory=lambda: ["en"])
    out: Path = Path("exp")
    speaker: str = "spk1"
    bf16: bool = False

    def __post_init__(self):
        if self.model.layers < 1:
            raise ValueError(f"model.layers must be >= 1, found {self.model.layers}")


def test_defaults_yaml_overrides_order(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("model:\n  layers: 4\noptim:\n  lr: 1.0e-3\n")
    cfg = load_config(Train, path, ["optim.lr=2e-3", "bf16=true", "languages=en,de,fr", "speaker=007"])
    assert cfg.model.layers == 4  # from YAML
    assert cfg.model.name == "hubert"  # default kept
    assert cfg.optim.lr == pytest.approx(2e-3)  # override wins over YAML
    assert cfg.bf16 is True
    assert cfg.languages == ["en", "de", "fr"]
    assert cfg.speaker == "007"  # strings stay verbatim, not parsed as ints
    assert cfg.optim.betas == (0.9, 0.98)


def test_round_trip_through_yaml(tmp_path):
    cfg = apply_overrides(Train(), ["model.name=wavlm", "model.dropout=0.1", "out=/x/y"])
    path = save_config(cfg, tmp_path / "resolved.yaml")
    again = load_config(Train, path)
    assert again == cfg
    assert "name: wavlm" in config_to_yaml(cfg)


def test_unknown_key_suggests_close_match(tmp_path):
    with pytest.raises(ConfigError, match=r"unknown key 'layer'.*Did you mean 'layers'"):
        apply_overrides(Train(), ["model.layer=3"])
    path = tmp_path / "bad.yaml"
    path.write_text("optim:\n  warmup_step: 10\n")
    with pytest.raises(ConfigError, match=r"bad.yaml.*unknown key 'warmup_step'.*'warmup_steps'"):
        load_config(Train, path)


@pytest.mark.parametrize(
    "override, message",
    [
        ("model.layers=two", "expected an integer"),
        ("model.layers=2.5", "expected an integer"),
        ("bf16=maybe", "expected a boolean"),
        ("model.name=conformer", r"expected one of \['hubert', 'wavlm'\]"),
        ("optim.betas=[0.9]", "expected 2 items"),
        ("model=3", "expected a mapping"),
        ("model.layers.x=1", "not a section"),
        ("layers", "expected KEY=VALUE"),
    ],
)
def test_type_errors_name_the_key(override, message):
    with pytest.raises(ConfigError, match=message):
        apply_overrides(Train(), [override])


def test_null_only_for_optional_and_post_init_runs():
    cfg = apply_overrides(Train(), ["model.dropout=0.2"])
    assert apply_overrides(cfg, ["model.dropout=null"]).model.dropout is None
    with pytest.raises(ConfigError, match="found null"):
        apply_overrides(Train(), ["model.layers=null"])
    with pytest.raises(ConfigError, match="model.layers must be >= 1"):
        apply_overrides(Train(), ["model.layers=0"])


def test_yaml_with_wrong_types_and_non_mapping(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("speaker: 7\n")
    with pytest.raises(ConfigError, match=r"speaker: expected a string, found int"):
        load_config(Train, path)
    path.write_text("- a\n- b\n")
    with pytest.raises(ConfigError, match="expected a mapping at the top level"):
        load_config(Train, path)
    with pytest.raises(FileNotFoundError, match="missing.yaml"):
        load_config(Train, tmp_path / "missing.yaml")


def test_cli_helpers_print_and_resolve(tmp_path, capsys):
    parser = argparse.ArgumentParser()
    parser.add_argument("out")
    parser.add_argument("--layers", type=int)
    add_config_args(parser)
    (tmp_path / "c.yaml").write_text("model:\n  layers: 6\n")
    args = parser.parse_intermixed_args(["o", "--config", str(tmp_path / "c.yaml"), "--layers", "8", "optim.lr=1e-2"])
    cfg = resolve_config(Train, args, [f"model.layers={args.layers}"])
    assert cfg.model.layers == 8 and cfg.optim.lr == pytest.approx(1e-2)
    # KEY=VALUE beats the flag
    args = parser.parse_intermixed_args(["o", "model.layers=3", "--layers", "8"])
    assert resolve_config(Train, args, [f"model.layers={args.layers}"]).model.layers == 3


# every YAML under recipes/ loads into the dataclass its folder and name stand for
def _recipe_schemas():
    from speechssl.data.mini import MiniCorpusConfig
    from speechssl.downstream.asr.train import AsrConfig
    from speechssl.downstream.er.train import ErConfig
    from speechssl.downstream.sv.train import SvConfig
    from speechssl.pretrain.trainer import PretrainConfig

    return {"data/mini*.yaml": MiniCorpusConfig, "pretrain/*.yaml": PretrainConfig, "asr/*.yaml": AsrConfig, "sv/*.yaml": SvConfig, "er/*.yaml": ErConfig}


def test_every_recipe_yaml_loads():
    import fnmatch

    root = Path(__file__).resolve().parents[1] / "recipes"
    files = sorted(root.rglob("*.yaml")) + sorted(root.rglob("*.yml"))
    assert files, "recipes/ has no YAML files"
    schemas = _recipe_schemas()
    for path in files:
        rel = path.relative_to(root).as_posix()
        matches = [cls for pattern, cls in schemas.items() if fnmatch.fnmatch(rel, pattern)]
        assert matches, f"recipes/{rel}: no schema registered for it in tests/test_config.py"
        cfg = load_config(matches[0], path)
        if matches[0].__name__ == "PretrainConfig":  # the encoder preset and its overrides resolve
            from speechssl.pretrain.trainer import encoder_config_of

            assert encoder_config_of(cfg).hidden_size > 0
