"""Typed TOML sections: dataclasses filled from tables with strict, explained validation.

Plugins describe their section as a dataclass too, so one loader checks every key of every
section the same way and an unknown key or a wrong type is reported with its dotted path.
"""

from __future__ import annotations

import dataclasses
import enum
import ipaddress
import types
import typing
from typing import Any, TypeVar, Union, get_args, get_origin, get_type_hints

from elemta_core.config.errors import ConfigError

T = TypeVar("T")

_TYPE_NAMES = {str: "a string", int: "an integer", float: "a number", bool: "true or false"}


def _describe(tp: Any) -> str:
    if tp in _TYPE_NAMES:
        return _TYPE_NAMES[tp]
    origin = get_origin(tp)
    if origin is list:
        return f"a list of {_describe(get_args(tp)[0]).removeprefix('a ').removeprefix('an ')}s"
    if origin is dict:
        return "a table"
    if isinstance(tp, type) and issubclass(tp, enum.Enum):
        return "one of " + ", ".join(repr(m.value) for m in tp)
    if origin is typing.Literal:
        return "one of " + ", ".join(repr(a) for a in get_args(tp))
    if dataclasses.is_dataclass(tp):
        return "a table"
    return getattr(tp, "__name__", str(tp))


def _convert(tp: Any, value: Any, key: str) -> Any:
    origin = get_origin(tp)
    if origin in (Union, types.UnionType):
        args = [a for a in get_args(tp) if a is not type(None)]
        if value is None:
            return None
        errors = []
        for a in args:
            try:
                return _convert(a, value, key)
            except ConfigError as e:
                errors.append(e)
        raise errors[0]
    if tp is Any:
        return value
    if origin is typing.Literal:
        if value not in get_args(tp):
            raise ConfigError(key, f"{value!r} is not allowed", f"use {_describe(tp)}")
        return value
    if isinstance(tp, type) and issubclass(tp, enum.Enum):
        try:
            return tp(value)
        except ValueError:
            raise ConfigError(key, f"{value!r} is not allowed", f"use {_describe(tp)}") from None
    if dataclasses.is_dataclass(tp):
        if not isinstance(value, dict):
            raise ConfigError(key, f"expected a table, got {type(value).__name__}",
                              f"write [{key}] with its keys")
        return load_section(tp, value, key)  # type: ignore[arg-type]
    if origin is list:
        if not isinstance(value, list):
            raise ConfigError(key, f"expected {_describe(tp)}, got {value!r}",
                              f"write {key} = [ ... ]")
        (item,) = get_args(tp)
        return [_convert(item, v, f"{key}[{i}]") for i, v in enumerate(value)]
    if origin is dict:
        if not isinstance(value, dict):
            raise ConfigError(key, f"expected a table, got {value!r}", f"write [{key}]")
        _, vt = get_args(tp)
        return {str(k): _convert(vt, v, f"{key}.{k}") for k, v in value.items()}
    if tp is bool:
        if not isinstance(value, bool):
            raise ConfigError(key, f"expected true or false, got {value!r}",
                              f"write {key} = true or {key} = false")
        return value
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(key, f"expected an integer, got {value!r}",
                              f"write {key} = <number>, without quotes")
        return value
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(key, f"expected a number, got {value!r}",
                              f"write {key} = <number>, without quotes")
        return float(value)
    if tp is str:
        if not isinstance(value, str):
            raise ConfigError(key, f"expected a string, got {value!r}",
                              f'write {key} = "..." in quotes')
        return value
    raise ConfigError(key, f"unsupported type {tp!r}")  # a programming error in a schema


def load_section(cls: type[T], data: dict[str, Any], prefix: str) -> T:
    """Build ``cls`` from a TOML table; unknown keys and wrong types are ConfigErrors."""
    hints = get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    aliases = getattr(cls, "__aliases__", {})
    kwargs: dict[str, Any] = {}
    for raw_key, value in data.items():
        name = aliases.get(raw_key, raw_key)
        key = f"{prefix}.{raw_key}" if prefix else raw_key
        if name not in fields or not fields[name].init or name.startswith("_"):
            known = ", ".join(sorted(k for k, f in fields.items() if f.init and not k.startswith("_")))
            raise ConfigError(key, "unknown key", f"remove it, or use one of: {known}")
        kwargs[name] = _convert(hints[name], value, key)
    try:
        obj = cls(**kwargs)
    except TypeError as e:
        missing = [n for n, f in fields.items() if f.default is dataclasses.MISSING
                   and f.default_factory is dataclasses.MISSING and n not in kwargs]
        if missing:
            key = f"{prefix}.{missing[0]}" if prefix else missing[0]
            raise ConfigError(key, "is required", f"add {missing[0]} = ...") from None
        raise ConfigError(prefix or "(top)", str(e)) from None
    validate = getattr(obj, "validate", None)
    if validate is not None:
        try:
            validate()
        except ConfigError as e:
            if prefix and not e.key.startswith(prefix):
                raise ConfigError(f"{prefix}.{e.key}", e.problem, e.fix) from None
            raise
    return obj


def check_positive(key: str, value: float, allow_zero: bool = False) -> None:
    if value < 0 or (value == 0 and not allow_zero):
        raise ConfigError(key, f"must be {'>= 0' if allow_zero else '> 0'}, got {value}",
                          f"set {key} to a positive number")


def check_networks(key: str, values: list[str]) -> None:
    for v in values:
        try:
            ipaddress.ip_network(v, strict=False)
        except ValueError:
            raise ConfigError(key, f"{v!r} is not an IP network",
                              'use CIDR notation like "192.0.2.0/24" or "::1/128"') from None


def parse_hostport(key: str, value: str, default_port: int | None = None) -> tuple[str, int]:
    """'host:port', '[v6]:port' or, with a default port, a bare host."""
    host, sep, port = value.rpartition(":")
    if value.startswith("[") and "]" in value:
        h, _, rest = value[1:].partition("]")
        host, port, sep = h, rest.lstrip(":"), ":" if rest else ""
    if not sep:
        if default_port is None:
            raise ConfigError(key, f"{value!r} has no port", 'write "host:port", e.g. "127.0.0.1:2525"')
        return value, default_port
    try:
        p = int(port)
    except ValueError:
        raise ConfigError(key, f"{value!r} has a bad port", 'write "host:port" with a numeric port') from None
    if not 0 <= p <= 65535:
        raise ConfigError(key, f"port {p} is out of range", "use a port from 0 to 65535")
    return host, p
