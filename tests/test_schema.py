"""`segment-pendo schema`: the JSON Schema accepts every good config and rejects what the loader rejects for typos,
types and choices (the checks that need code, such as FQL, stay with the loader)."""

from __future__ import annotations

import json
import tomllib
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from hypothesis import given, settings

from generator.cli import main
from generator.config_loader import load_config, parse_config
from generator.errors import ConfigError
from generator.schema import config_schema
from tests.support.config_strategies import config_texts
from tests.test_bad_configs import BAD_CONFIGS

CHECKOUT = Path(__file__).resolve().parent.parent
GOOD_CONFIGS = sorted((CHECKOUT / "tests" / "configs").glob("*.toml")) + sorted((CHECKOUT / "site_demo").glob("*.toml"))
# Bad configs the schema can tell from the file alone: unknown keys, wrong types, choices, ranges, the key's form.
REJECTED_BY_THE_SCHEMA = [
    "empty file",
    "no api_key",
    "empty api_key",
    "api_key number",
    "api_key with spaces",
    "api_key injection",
    "unknown table",
    "typo in pendo",
    "bad region",
    "region as number",
    "options typo",
    "option wrong type",
    "bad nonce",
    "negative guide timeout",
    "bad client",
    "user_traits string",
    "key filter not a list",
    "subscriptions as table",
    "subscription without action",
    "unknown action",
    "consent not a list",
    "guide_events enabled string",
    "guide_events unknown event",
    "bad target",
    "debug as string",
    "metadata group typo",
    "metadata window too long",
    "metadata body too small",
]
BAD_TEXT = {case: text for case, text, _ in BAD_CONFIGS}
VALIDATOR = jsonschema.Draft202012Validator(config_schema())


@pytest.fixture(scope="module")
def validator() -> jsonschema.protocols.Validator:
    schema = config_schema()
    jsonschema.Draft202012Validator.check_schema(schema)
    return jsonschema.Draft202012Validator(schema)


@pytest.mark.parametrize("path", GOOD_CONFIGS, ids=lambda path: path.name)
def test_the_schema_accepts_every_good_config(path: Path, validator: jsonschema.protocols.Validator) -> None:
    load_config(path)
    errors = [error.message for error in validator.iter_errors(tomllib.loads(path.read_text()))]
    assert errors == []


@pytest.mark.parametrize("case", REJECTED_BY_THE_SCHEMA)
def test_the_schema_rejects_what_the_loader_rejects(
    case: str, validator: jsonschema.protocols.Validator, tmp_path: Path
) -> None:
    text = BAD_TEXT[case]
    path = tmp_path / "pendo.toml"
    path.write_bytes(text.encode() if isinstance(text, str) else text)
    with pytest.raises(ConfigError):
        load_config(path)
    assert list(validator.iter_errors(tomllib.loads(path.read_text())))


def _objects(node: Any) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = []
    if isinstance(node, dict):
        if "properties" in node:
            found.append(node)
        for value in node.values():
            found.extend(_objects(value))
    elif isinstance(node, list):
        for value in node:
            found.extend(_objects(value))
    return found


def test_every_table_forbids_unknown_keys_and_every_key_has_a_title_and_a_description() -> None:
    schema = config_schema()
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    tables = _objects(schema)
    assert len(tables) >= 15
    for table in tables:
        assert table["additionalProperties"] is False, table.get("title")
        for key, prop in table["properties"].items():
            assert prop["title"] == key
            assert prop["description"], key
            assert "null" not in json.dumps(prop.get("anyOf", [])), key


def test_defaults_and_choices_are_there_for_the_editor_to_offer() -> None:
    definitions = config_schema()["$defs"]
    region = definitions["PendoSettings"]["properties"]["region"]
    assert region["enum"] == ["io", "eu", "us1", "jp", "au", "gov"] and region["default"] == "io"
    assert definitions["Subscription"]["properties"]["enabled"]["default"] is True
    assert definitions["Subscription"]["properties"]["action"]["enum"] == ["identify", "group", "track", "page"]


def test_schema_prints_or_writes_the_same_json(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["schema"]) == 0
    printed = capsys.readouterr().out
    out = tmp_path / "segment-pendo.schema.json"
    assert main(["schema", "--out", str(out)]) == 0
    assert out.read_text() == printed
    assert json.loads(printed) == config_schema()
    assert "#:schema ./segment-pendo.schema.json" in capsys.readouterr().out


def test_a_config_with_the_schema_line_still_loads(tmp_path: Path) -> None:
    path = tmp_path / "pendo.toml"
    path.write_text('#:schema ./segment-pendo.schema.json\n[pendo]\napi_key = "k-1"\n')
    assert load_config(path).pendo.api_key == "k-1"


@settings(max_examples=200, deadline=None)
@given(config_texts())
def test_the_schema_accepts_every_generated_valid_config(config_text: str) -> None:
    data = tomllib.loads(config_text)
    parse_config(data)
    assert [error.message for error in VALIDATOR.iter_errors(data)] == []
