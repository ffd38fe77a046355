"""Read a TOML config file and turn every schema violation into one readable line."""

from __future__ import annotations

import difflib
import hashlib
import json
import tomllib
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, get_args, get_origin

from pydantic import BaseModel, ValidationError
from pydantic_core import ErrorDetails

from generator import toml_writer
from generator.config import Config
from generator.errors import ConfigError

_TYPE_NAMES = {
    str: "a string",
    bool: "a boolean",
    int: "an integer",
    float: "a number",
    dict: "a table",
    list: "an array",
}
_EXPECTED_BY_ERROR = {
    "string_type": "a string",
    "bool_type": "true or false",
    "int_type": "an integer",
    "float_type": "a number",
    "dict_type": "a table",
    "model_type": "a table",
    "model_attributes_type": "a table",
    "list_type": "an array",
}


def load_config(path: str | Path) -> Config:
    """Read and validate a config file, raising ConfigError with every problem found."""
    path = Path(path)
    return parse_config(_read_toml(path), source=str(path))


def parse_config(data: Mapping[str, Any], *, source: str = "config") -> Config:
    """Validate already-parsed config data."""
    try:
        return Config.model_validate(dict(data))
    except ValidationError as error:
        raise ConfigError(source, [describe_error(detail) for detail in error.errors()]) from None


def config_digest(config: Config) -> str:
    """A digest of the validated config, stable across formatting and key order of the file."""
    canonical = json.dumps(config.model_dump(mode="json"), sort_keys=True, separators=(",", ":"))
    return "sha256-" + hashlib.sha256(canonical.encode()).hexdigest()


# A config is a short text file; anything bigger (or endless, like /dev/zero) is not one.
MAX_CONFIG_BYTES = 1_000_000


class ConfigPathError(ConfigError):
    """The --config path itself is wrong (missing, a folder, unreadable): one line, naming the path and the fix."""

    def __init__(self, source: str, problem: str) -> None:
        """Keep the ConfigError fields; the message is the one line."""
        super().__init__(source, [problem])
        self.args = (f"{source}: {problem}",)

    def __str__(self) -> str:
        """`path: problem`."""
        return str(self.args[0])


def _read_toml(path: Path) -> dict[str, Any]:
    try:
        if path.is_dir():
            raise ConfigPathError(str(path), "is a directory; pass the path of a .toml config file")
        with path.open("rb") as handle:
            raw = handle.read(MAX_CONFIG_BYTES + 1)
    except FileNotFoundError:
        raise ConfigPathError(str(path), "file not found; check the path passed to --config") from None
    except OSError as error:
        raise ConfigPathError(
            str(path), f"cannot be read: {error.strerror}; check the path passed to --config"
        ) from None
    if len(raw) > MAX_CONFIG_BYTES:
        raise ConfigPathError(str(path), "is over 1 MB, too big for a config; pass the path of a .toml config file")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as error:
        raise ConfigError(
            str(path), [f"is not UTF-8 (bad byte at offset {error.start}); save the file as UTF-8"]
        ) from None
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as error:
        if text.lstrip().startswith("{"):
            raise ConfigError(str(path), [_json_in_toml(text)]) from None
        raise ConfigError(str(path), [f"TOML syntax error: {error}"]) from None
    except RecursionError:
        raise ConfigError(str(path), ["nests arrays or tables too deeply to read; a config is a few tables"]) from None


def _json_in_toml(text: str) -> str:
    """A config written as JSON: say so, with its first key written as TOML when the JSON can be read."""
    message = "this looks like JSON; the config is TOML"
    try:
        data = json.loads(text)
    except (json.JSONDecodeError, RecursionError):
        return f"{message} (tables are [name] lines, then key = value lines)"
    if not isinstance(data, dict) or not data:
        return f"{message} (tables are [name] lines, then key = value lines)"
    name, item = next(iter(data.items()))
    try:
        if isinstance(item, dict):
            lines = [f"[{toml_writer.key(name)}]"]
            if item:
                entry, first = next(iter(item.items()))
                lines.append(f"{toml_writer.key(entry)} = {toml_writer.value(first, f'{name}.{entry}')}")
        else:
            lines = [f"{toml_writer.key(name)} = {toml_writer.value(item, name)}"]
    except toml_writer.TomlWriteError:
        return f"{message} (tables are [name] lines, then key = value lines)"
    example = "".join(f"\n    {line}" for line in lines)
    return f"{message}; its first key in TOML:{example}"


def describe_error(detail: ErrorDetails) -> str:
    """One line naming the field, the bad value and what is allowed."""
    location = ".".join(str(part) for part in detail["loc"]) or "(top level)"
    kind = detail["type"]
    value = detail.get("input")
    context = detail.get("ctx") or {}
    if kind == "missing":
        return f"{location}: is required but missing; {_field_help(detail['loc'])}"
    if kind == "extra_forbidden":
        return _unknown_key_message(detail["loc"])
    if kind == "literal_error":
        allowed = ", ".join(str(choice).strip("'") for choice in _literal_choices(context))
        return f"{location}: {_show(value)} is not one of {allowed}"
    if kind in _EXPECTED_BY_ERROR:
        return f"{location}: expected {_EXPECTED_BY_ERROR[kind]}, got {_type_name(value)} {_show(value)}"
    if kind in ("greater_than_equal", "greater_than"):
        bound = context.get("ge", context.get("gt"))
        relation = "at least" if kind == "greater_than_equal" else "more than"
        return f"{location}: must be {relation} {bound}, got {_show(value)}"
    if kind in ("less_than_equal", "less_than"):
        bound = context.get("le", context.get("lt"))
        relation = "at most" if kind == "less_than_equal" else "less than"
        return f"{location}: must be {relation} {bound}, got {_show(value)}"
    if kind == "value_error":
        message = detail["msg"].removeprefix("Value error, ")
        # Checks across tables name their own fields.
        return message if not detail["loc"] else f"{location}: {message}"
    return f"{location}: {detail['msg']} (got {_show(value)})"


def _literal_choices(context: Mapping[str, Any]) -> Sequence[str]:
    expected = str(context.get("expected", ""))
    return [part.strip().strip("'") for part in expected.replace(" or ", ", ").split(",") if part.strip()]


def _unknown_key_message(loc: tuple[int | str, ...]) -> str:
    location = ".".join(str(part) for part in loc)
    model = _model_at(loc[:-1])
    allowed = list(model.model_fields) if model else []
    hint = ""
    close = difflib.get_close_matches(str(loc[-1]), allowed, n=1)
    if close:
        hint = f"did you mean {close[0]!r}? "
    return f"{location}: unknown key; {hint}allowed keys here: {', '.join(allowed)}"


def _field_help(loc: tuple[int | str, ...]) -> str:
    table_model = _model_at(loc)
    if table_model is not None:
        required = [name for name, field in table_model.model_fields.items() if field.is_required()]
        return f"add a [{'.'.join(str(part) for part in loc)}] table with {', '.join(required)}"
    model = _model_at(loc[:-1])
    field = model.model_fields.get(str(loc[-1])) if model else None
    table = ".".join(str(part) for part in loc[:-1])
    where = f" under [{table}]" if table else ""
    description = field.description if field and field.description else "a value"
    return f"add {loc[-1]} = ...{where}: {description}"


def _model_at(loc: tuple[int | str, ...]) -> type[BaseModel] | None:
    """The config table a location points into, following list items and optional tables."""
    model: type[BaseModel] = Config
    parts = list(loc)
    while parts:
        field = model.model_fields.get(str(parts.pop(0)))
        found = _table_type(field.annotation if field else None)
        if found is None:
            return None
        model, is_list = found
        if is_list:
            if not parts or not isinstance(parts[0], int):
                return None
            parts.pop(0)
    return model


def _table_type(annotation: Any) -> tuple[type[BaseModel], bool] | None:
    """The model behind `Model`, `Model | None` or `list[Model]`, and whether it is a list."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation, False
    is_list = get_origin(annotation) is list
    for argument in get_args(annotation):
        if isinstance(argument, type) and issubclass(argument, BaseModel):
            return argument, is_list
    return None


def _type_name(value: object) -> str:
    for python_type, name in _TYPE_NAMES.items():
        if type(value) is python_type:
            return name
    return type(value).__name__


def _show(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."
