"""Configs: nested dataclasses are the schema, YAML maps onto them one to one.

* ``load_config(MyConfig, "recipe.yaml", ["model.layers=4"])`` builds a config from defaults, a YAML
  file and typed ``key.sub=value`` overrides, in that order.
* Unknown keys fail with a close-match suggestion and the list of valid keys; wrong types fail with
  what was expected and what was found, naming the key (and the file).
* ``config_to_yaml`` / ``save_config`` write the fully resolved config back.
* ``add_config_args`` + ``resolve_config`` give every CLI verb ``--config``, ``--print-config`` and
  trailing ``key=value`` overrides.

No strings are eval'd and no import paths or object constructors are read from YAML: a YAML file
holds only plain values (numbers, strings, booleans, lists, mappings).
"""

from __future__ import annotations

import argparse
import dataclasses
import difflib
import enum
import os
import types
import typing
from pathlib import Path
from typing import Any, Iterable, Mapping, TypeVar

import yaml

T = TypeVar("T")

_TRUE = {"true", "yes", "on", "1"}
_FALSE = {"false", "no", "off", "0"}
_NONE = {"null", "none", "~", ""}


class ConfigError(ValueError):
    """A config that does not fit its schema: unknown key, wrong type, bad override syntax."""


def _hints(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def _is_optional(tp: Any) -> tuple[bool, Any]:
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        if len(args) != len(typing.get_args(tp)):
            inner = args[0] if len(args) == 1 else typing.Union[tuple(args)]
            return True, inner
    return False, tp


def _type_name(tp: Any) -> str:
    if isinstance(tp, type):
        return tp.__name__
    return str(tp).replace("typing.", "")


def _unknown_key(key: str, valid: Iterable[str], where: str) -> ConfigError:
    valid = list(valid)
    close = difflib.get_close_matches(key, valid, n=1, cutoff=0.6)
    hint = f" Did you mean '{close[0]}'?" if close else ""
    return ConfigError(f"{where}: unknown key '{key}'.{hint} Valid keys: {', '.join(valid)}")


def _coerce(value: Any, tp: Any, where: str) -> Any:
    """Check ``value`` (from YAML or a parsed override) against the annotation ``tp``."""
    optional, inner = _is_optional(tp)
    if value is None:
        if optional or tp is Any:
            return None
        raise ConfigError(f"{where}: expected {_type_name(tp)}, found null")
    tp = inner
    origin, args = typing.get_origin(tp), typing.get_args(tp)

    if tp is Any:
        return value
    if dataclasses.is_dataclass(tp):
        if isinstance(value, tp):
            return value
        if not isinstance(value, Mapping):
            raise ConfigError(f"{where}: expected a mapping for {tp.__name__}, found {type(value).__name__} {value!r}")
        return _from_dict(tp, value, where)
    if origin is typing.Literal:
        if value in args:
            return value
        raise ConfigError(f"{where}: expected one of {list(args)}, found {value!r}")
    if origin in (typing.Union, types.UnionType):
        errors = []
        for alt in args:
            try:
                return _coerce(value, alt, where)
            except ConfigError as e:
                errors.append(str(e))
        raise ConfigError(f"{where}: {value!r} matches none of {_type_name(tp)}")
    if origin in (list, tuple, typing.Sequence, set, frozenset) or tp in (list, tuple):
        if isinstance(value, str):  # "a,b,c" from an override
            value = [v.strip() for v in value.split(",") if v.strip()]
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{where}: expected a list, found {type(value).__name__} {value!r}")
        if origin is tuple and args and args[-1] is not Ellipsis:
            if len(args) != len(value):
                raise ConfigError(f"{where}: expected {len(args)} items, found {len(value)}")
            return tuple(_coerce(v, a, f"{where}[{i}]") for i, (v, a) in enumerate(zip(value, args)))
        item_tp = args[0] if args else Any
        items = [_coerce(v, item_tp, f"{where}[{i}]") for i, v in enumerate(value)]
        return tuple(items) if origin is tuple or tp is tuple else (set(items) if origin in (set, frozenset) else items)
    if origin in (dict, typing.Mapping) or tp is dict:
        if not isinstance(value, Mapping):
            raise ConfigError(f"{where}: expected a mapping, found {type(value).__name__} {value!r}")
        kt, vt = (args + (Any, Any))[:2] if args else (Any, Any)
        return {_coerce(k, kt, f"{where}.{k}"): _coerce(v, vt, f"{where}.{k}") for k, v in value.items()}
    if isinstance(tp, type) and issubclass(tp, enum.Enum):
        for member in tp:
            if value == member.value or value == member.name:
                return member
        raise ConfigError(f"{where}: expected one of {[m.value for m in tp]}, found {value!r}")
    if tp is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in _TRUE | _FALSE:
            return value.lower() in _TRUE
        raise ConfigError(f"{where}: expected a boolean (true/false), found {value!r}")
    if tp is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        if isinstance(value, float) and value.is_integer():
            return int(value)
        raise ConfigError(f"{where}: expected an integer, found {type(value).__name__} {value!r}")
    if tp is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        if isinstance(value, str):
            try:
                return float(value)  # YAML 1.1 reads "1e-4" as a string
            except ValueError:
                pass
        raise ConfigError(f"{where}: expected a number, found {type(value).__name__} {value!r}")
    if tp is str:
        if isinstance(value, str):
            return value
        raise ConfigError(f"{where}: expected a string, found {type(value).__name__} {value!r} (quote it in YAML)")
    if tp is Path or (isinstance(tp, type) and issubclass(tp, os.PathLike)):
        if isinstance(value, (str, os.PathLike)):
            return Path(value)
        raise ConfigError(f"{where}: expected a path, found {type(value).__name__} {value!r}")
    raise ConfigError(f"{where}: unsupported field type {_type_name(tp)} in the schema")


def _from_dict(cls: type[T], data: Mapping[str, Any], where: str) -> T:
    hints = _hints(cls)
    names = [f.name for f in dataclasses.fields(cls) if f.init]
    kwargs = {}
    for key, value in data.items():
        if key not in names:
            raise _unknown_key(str(key), names, f"{where} ({cls.__name__})")
        kwargs[key] = _coerce(value, hints[key], f"{where}.{key}" if where else key)
    try:
        return cls(**kwargs)
    except (TypeError, ValueError) as e:
        if isinstance(e, ConfigError):
            raise
        raise ConfigError(f"{where or cls.__name__}: {e}") from None


def from_dict(cls: type[T], data: Mapping[str, Any], *, source: str | None = None) -> T:
    """Build dataclass ``cls`` from a plain mapping, strictly (unknown keys and wrong types fail)."""
    if not isinstance(data, Mapping):
        raise ConfigError(f"{source or cls.__name__}: expected a mapping at the top level, found {type(data).__name__}")
    return _from_dict(cls, data, source or "")


def to_dict(cfg: Any) -> Any:
    """The config as plain YAML-able values (dataclasses -> dicts, tuples -> lists, paths -> str)."""
    if dataclasses.is_dataclass(cfg) and not isinstance(cfg, type):
        return {f.name: to_dict(getattr(cfg, f.name)) for f in dataclasses.fields(cfg)}
    if isinstance(cfg, (list, tuple, set, frozenset)):
        return [to_dict(v) for v in cfg]
    if isinstance(cfg, Mapping):
        return {str(k): to_dict(v) for k, v in cfg.items()}
    if isinstance(cfg, enum.Enum):
        return cfg.value
    if isinstance(cfg, os.PathLike):
        return os.fspath(cfg)
    return cfg


def config_to_yaml(cfg: Any) -> str:
    return yaml.safe_dump(to_dict(cfg), sort_keys=False, default_flow_style=False, allow_unicode=True)


def save_config(cfg: Any, path: str | os.PathLike) -> Path:
    """Write the resolved config as YAML, atomically."""
    from speechssl.io import atomic_write_text

    atomic_write_text(path, config_to_yaml(cfg))
    return Path(path)


def _field_type(cls: type, dotted: str) -> Any:
    """The annotation of ``a.b.c`` in dataclass ``cls``; unknown keys fail with a suggestion."""
    tp: Any = cls
    walked = []
    for part in dotted.split("."):
        _, tp = _is_optional(tp)
        if not dataclasses.is_dataclass(tp):
            if typing.get_origin(tp) in (dict, typing.Mapping):  # free-form mapping: any key
                tp = (typing.get_args(tp) + (Any, Any))[1]
                walked.append(part)
                continue
            raise ConfigError(f"override '{dotted}': '{'.'.join(walked)}' is a {_type_name(tp)}, not a section")
        names = [f.name for f in dataclasses.fields(tp) if f.init]
        if part not in names:
            where = ".".join(walked) or tp.__name__
            raise _unknown_key(part, names, f"override '{dotted}' ({where})")
        tp = _hints(tp)[part]
        walked.append(part)
    return tp


def _parse_value(raw: str, tp: Any) -> Any:
    optional, inner = _is_optional(tp)
    if optional and raw.strip().lower() in _NONE:
        return None
    if inner is str or (isinstance(inner, type) and issubclass(inner, (str, os.PathLike))) or inner is Path:
        return raw  # strings are taken verbatim: "007" stays "007"
    if typing.get_origin(inner) is typing.Literal and all(isinstance(a, str) for a in typing.get_args(inner)):
        return raw
    try:
        return yaml.safe_load(raw) if raw.strip() else raw
    except yaml.YAMLError:
        return raw


def apply_overrides(cfg: T, overrides: Iterable[str]) -> T:
    """Apply ``key.sub=value`` strings to a config instance; returns a new, validated instance."""
    cls = type(cfg)
    data = to_dict(cfg)
    for item in overrides:
        if "=" not in item:
            raise ConfigError(f"override '{item}': expected KEY=VALUE (e.g. hours=2.0)")
        key, raw = item.split("=", 1)
        key = key.strip()
        if not key:
            raise ConfigError(f"override '{item}': empty key")
        tp = _field_type(cls, key)
        value = _parse_value(raw, tp)
        _coerce(value, tp, f"override '{key}'")  # fail early, with the key in the message
        node = data
        parts = key.split(".")
        for part in parts[:-1]:
            if node.get(part) is None:
                node[part] = {}
            node = node[part]
        node[parts[-1]] = value
    return from_dict(cls, data)


def load_config(base: type[T] | T, path: str | os.PathLike | None = None, overrides: Iterable[str] = ()) -> T:
    """Defaults (``base``: a dataclass type or a preset instance), then YAML ``path``, then overrides.

    The YAML file may set any subset of keys; keys it leaves out keep the base's values.
    """
    cfg = base() if isinstance(base, type) else base
    if path is not None:
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"{path}: config file not found")
        try:
            data = yaml.safe_load(path.read_text(encoding="utf-8-sig")) or {}
        except yaml.YAMLError as e:
            raise ConfigError(f"{path}: not valid YAML ({e})") from None
        if not isinstance(data, Mapping):
            raise ConfigError(f"{path}: expected a mapping at the top level, found {type(data).__name__}")
        merged = _deep_merge(to_dict(cfg), data)
        try:
            cfg = from_dict(type(cfg), merged)
        except ConfigError as e:
            raise ConfigError(f"{path}: {e}") from None
    return apply_overrides(cfg, overrides)


def _deep_merge(base: dict, update: Mapping) -> dict:
    out = dict(base)
    for k, v in update.items():
        if isinstance(v, Mapping) and isinstance(out.get(k), dict):
            out[k] = _deep_merge(out[k], v)
        else:
            out[k] = v
    return out


def add_config_args(parser: argparse.ArgumentParser) -> None:
    """Give a verb ``--config``, ``--print-config`` and trailing ``key.sub=value`` overrides."""
    parser.add_argument("--config", type=Path, default=None, metavar="YAML", help="config file (any subset of keys)")
    parser.add_argument("--print-config", action="store_true", help="print the resolved config as YAML and exit")
    parser.add_argument(
        "overrides", nargs="*", default=[], metavar="KEY=VALUE", help="typed config overrides, e.g. seed=3 sub.key=value"
    )


def resolve_config(base: type[T] | T, args: argparse.Namespace, extra_overrides: Iterable[str] = ()) -> T:
    """Defaults < ``--config`` YAML < ``extra_overrides`` (what a verb's flags mean) < ``KEY=VALUE``."""
    cfg = load_config(base, getattr(args, "config", None), extra_overrides)
    return apply_overrides(cfg, getattr(args, "overrides", []) or [])
