"""Where settings come from (default, config file, environment, command line) and how a mistake
in them is told: one line per mistake, naming the file or variable, the key, what is wrong and
what is expected.
"""

from __future__ import annotations

import difflib
import json
import os
import tomllib
import typing
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urlsplit, urlunsplit

from pydantic import BaseModel, ValidationError
from pydantic_core import ErrorDetails

from hubgate import constants

M = TypeVar("M", bound=BaseModel)
SECRET_KEYS = frozenset({"database_url"})  # may hold a password: never shown
HIDDEN_KEYS = frozenset({"secret_key", "secret_access_key"})  # secrets: never shown, not even masked


class ConfigError(Exception):
    """Settings that cannot be used; `lines` says why, one mistake per line."""

    def __init__(self, lines: list[str]) -> None:
        super().__init__("\n".join(lines))
        self.lines = lines


@dataclass
class Layers:
    """The raw values of each source, before validation; later sources win, key by key."""

    flags: dict[str, Any] = field(default_factory=dict)
    env: dict[str, Any] = field(default_factory=dict)
    file: dict[str, Any] = field(default_factory=dict)
    file_path: Path | None = None

    def merged(self) -> dict[str, Any]:
        return {**self.file, **self.env, **self.flags}

    def source(self, key: str) -> str:
        """'flag', 'env', 'file' or 'default': where the top-level setting `key` comes from."""
        for name, layer in (("flag", self.flags), ("env", self.env), ("file", self.file)):
            if key in layer:
                return name
        return "default"

    def where(self, key: str) -> str:
        """How an operator finds the value of `key`: the option, the variable or the file."""
        source = self.source(key)
        if source == "flag":
            return "--" + key.replace("_", "-")
        if source == "env":
            return f"{constants.ENV_PREFIX}{key.upper()} (environment)"
        return str(self.file_path) if source == "file" else "default"

    def validate(self, model: type[M]) -> M:
        try:
            return model.model_validate(self.merged())
        except ValidationError as exc:
            raise ConfigError([self._describe(model, error) for error in exc.errors()]) from None

    def prefix(self, loc: tuple[int | str, ...]) -> str:
        """`FILE: key: `, `--option: ` or `VARIABLE (environment): sub.key: ` for the value at `loc`."""
        where = self.where(str(loc[0]) if loc else "")
        # Inside the file a key is named as written there; an option or a variable names itself.
        key = _dotted(loc if where == str(self.file_path) else loc[1:])
        return f"{where}: {key}: " if key else f"{where}: "

    def _describe(self, model: type[BaseModel], error: ErrorDetails) -> str:
        loc = error["loc"]
        top = str(loc[0]) if loc else ""
        prefix = self.prefix(loc)
        if error["type"] == "extra_forbidden":
            known = _field_names(model, loc[:-1])
            guess = difflib.get_close_matches(str(loc[-1]), known, n=1)
            hint = f" (did you mean {guess[0]}?)" if guess else ""
            return f"{prefix}unknown setting{hint}; expected one of {', '.join(known)}"
        if error["type"] == "missing":
            return f"{prefix}missing; expected {_expected(model, error)}"
        given = str(error["input"]) if isinstance(error["input"], Path) else error["input"]
        shown = "a value" if top in SECRET_KEYS or _holds_secret(loc, given) else repr(given)
        return f"{prefix}got {shown}; expected {_expected(model, error)}"

    def effective(self, settings: BaseModel) -> Iterator[tuple[str, str, str]]:
        """(key, value, source) for every setting, secrets masked, nested tables flattened."""
        for key, value in settings.model_dump(mode="json").items():
            source = self._source_text(key)
            if isinstance(value, dict):
                given = self._given(key)
                for sub, sub_value in value.items():
                    yield f"{key}.{sub}", _shown(sub, sub_value), source if sub in given else "default"
            elif isinstance(value, list) and value and all(isinstance(v, dict) for v in value):
                raw = self.merged().get(key)
                for index, item in enumerate(value):
                    given = raw[index] if isinstance(raw, list) and isinstance(raw[index], dict) else {}
                    for sub, sub_value in item.items():
                        yield f"{key}[{index}].{sub}", _shown(sub, sub_value), source if sub in given else "default"
            elif key == "data":
                yield key, f"{value} ({Path(value).absolute()})", source
            else:
                yield key, _shown(key, value), source

    def _source_text(self, key: str) -> str:
        source = self.source(key)
        return source if source == "default" else f"{source} {self.where(key).removesuffix(' (environment)')}"

    def _given(self, key: str) -> dict[str, Any]:
        value = self.merged().get(key)
        return value if isinstance(value, dict) else {}


def load_layers(model: type[BaseModel], options: dict[str, Any]) -> Layers:
    """Read the environment and the config file named by `--config` or HUBGATE_CONFIG."""
    layers = Layers(flags={k: v for k, v in options.items() if v is not None})
    errors: list[str] = []
    for name, info in model.model_fields.items():
        variable = f"{constants.ENV_PREFIX}{name.upper()}"
        raw = os.environ.get(variable)
        if raw is None:
            continue
        if _is_table(info.annotation):
            try:
                layers.env[name] = json.loads(raw)
            except json.JSONDecodeError:
                errors.append(f"{variable} (environment): not valid JSON; expected the {name} table as JSON")
        else:
            layers.env[name] = raw
    config = layers.flags.get("config") or layers.env.get("config")
    if config:
        layers.file_path = Path(config)
        where = layers.where("config")
        try:
            layers.file = tomllib.loads(layers.file_path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            errors.append(f"{where}: {config}: no such file; expected the path of a TOML config file")
        except IsADirectoryError:
            errors.append(f"{where}: {config}: is a folder; expected the path of a TOML config file")
        except (OSError, UnicodeDecodeError) as exc:
            errors.append(f"{where}: {config}: cannot be read ({exc}); expected a readable UTF-8 TOML file")
        except tomllib.TOMLDecodeError as exc:
            errors.append(f"{config}: not valid TOML: {exc}; expected TOML (key = value lines and [tables])")
    if errors:
        raise ConfigError(errors)
    return layers


def _is_table(annotation: Any) -> bool:
    """Whether a field holds a table or a list (given as JSON in the environment)."""
    for arg in (annotation, *typing.get_args(annotation)):
        if typing.get_origin(arg) in (list, dict) or (isinstance(arg, type) and issubclass(arg, BaseModel)):
            return True
    return False


def _nested_model(model: type[BaseModel], loc: tuple[int | str, ...]) -> type[BaseModel] | None:
    """The model that holds the field at `loc` (list indexes skipped), if any."""
    current: type[BaseModel] | None = model
    for part in loc:
        if isinstance(part, int) or current is None:
            continue
        info = current.model_fields.get(part)
        if info is None:
            return None
        current = next(
            (a for a in (info.annotation, *typing.get_args(info.annotation)) if isinstance(a, type) and issubclass(a, BaseModel)),
            None,
        )
    return current


def _field_names(model: type[BaseModel], loc: tuple[int | str, ...]) -> list[str]:
    holder = _nested_model(model, loc)
    return list(holder.model_fields) if holder else []


def _expected(model: type[BaseModel], error: ErrorDetails) -> str:
    loc = error["loc"]
    holder = _nested_model(model, loc[:-1])
    info = holder.model_fields.get(str(loc[-1])) if holder and loc else None
    if error["type"] == "value_error":
        return str(error["msg"]).removeprefix("Value error, ")
    if error["type"] == "literal_error":
        return f"one of {error.get('ctx', {}).get('expected', '')}"
    if info is not None and info.description:
        return info.description
    return _BY_TYPE.get(error["type"], str(error["msg"]).removeprefix("Input should be "))


_BY_TYPE = {
    "int_parsing": "a whole number",
    "int_type": "a whole number",
    "int_from_float": "a whole number",
    "float_parsing": "a number",
    "float_type": "a number",
    "bool_parsing": "true or false",
    "bool_type": "true or false",
    "string_type": "a string",
    "list_type": "a list",
    "model_type": "a table",
    "dict_type": "a table",
    "path_type": "a path",
}


def _dotted(loc: tuple[int | str, ...]) -> str:
    text = ""
    for part in loc:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text


def _holds_secret(loc: tuple[int | str, ...], given: Any) -> bool:
    """Whether a refused value is, or is a table holding, a secret."""
    return any(part in HIDDEN_KEYS for part in loc) or (isinstance(given, dict) and any(key in HIDDEN_KEYS for key in given))


def _shown(key: str, value: Any) -> str:
    if value is None:
        return "(none)"
    if key in SECRET_KEYS or (key == "url" and isinstance(value, str)):
        return masked_url(str(value))
    if key in HIDDEN_KEYS:
        return "*** (hidden)"
    if key == "token_env":
        return f"{value} ({'set' if os.environ.get(value) else 'NOT SET'}; value hidden)"
    return json.dumps(value) if isinstance(value, (list, dict)) else str(value)


def masked_url(url: str) -> str:
    """`scheme://user:***@host/...`: the password never shown."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@", 1)
    return urlunsplit(parts._replace(netloc=netloc))
