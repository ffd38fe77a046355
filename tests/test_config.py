"""Config validation: what loads, and the exact message for what does not."""

from __future__ import annotations

from pathlib import Path

import pytest

from generator.config_loader import config_digest, load_config, parse_config
from generator.errors import ConfigError

KEY = "5e5b1b2c-7d0a-4d6e-9b1f-3c2a1d0e9f8a"


def problems(data: dict[str, object]) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        parse_config(data)
    return caught.value.problems


def test_minimal_config_gets_the_defaults() -> None:
    config = parse_config({"pendo": {"api_key": KEY}})
    assert config.pendo.region == "io"
    assert config.pendo.content_host is None
    assert config.build.target == "es2017"
    assert config.pendo.agent_url == f"https://cdn.pendo.io/agent/static/{KEY}/pendo.js"


@pytest.mark.parametrize(
    ("region", "host"),
    [
        ("io", "cdn.pendo.io"),
        ("eu", "cdn.eu.pendo.io"),
        ("us1", "us1.cdn.pendo.io"),
        ("jp", "cdn.jpn.pendo.io"),
        ("au", "cdn.au.pendo.io"),
        ("gov", "cdn.gov.pendo.io"),
    ],
)
def test_each_region_maps_to_its_cdn(region: str, host: str) -> None:
    config = parse_config({"pendo": {"api_key": KEY, "region": region}})
    assert config.pendo.agent_url == f"https://{host}/agent/static/{KEY}/pendo.js"


@pytest.mark.parametrize(
    ("given", "normalized"),
    [
        ("pendo.example.com", "pendo.example.com"),
        ("https://pendo.example.com", "pendo.example.com"),
        ("https://Pendo.Example.com/", "pendo.example.com"),
        ("pendo.example.com:8443", "pendo.example.com:8443"),
        ("", None),
    ],
)
def test_content_host_accepts_a_host_with_optional_scheme_and_trailing_slash(given: str, normalized: str) -> None:
    config = parse_config({"pendo": {"api_key": KEY, "region": "eu", "content_host": given}})
    assert config.pendo.content_host == normalized
    if normalized:
        assert config.pendo.agent_url == f"https://{normalized}/agent/static/{KEY}/pendo.js"


@pytest.mark.parametrize("option", ["dataHost", "contentHost", "assetHost"])
@pytest.mark.parametrize(
    "given",
    ["pendo-data.example.com", "https://pendo-data.example.com", "HTTPS://Pendo-Data.example.com/"],
)
def test_agent_hosts_reach_the_agent_as_https_origins(option: str, given: str) -> None:
    config = parse_config({"pendo": {"api_key": KEY, "options": {option: given}}})
    assert config.pendo.options.for_agent() == {option: "https://pendo-data.example.com"}


@pytest.mark.parametrize("domain", [".example.com", "example.com", "shop.example.co.uk"])
def test_cookie_domain_accepts_a_domain_with_or_without_leading_dot(domain: str) -> None:
    config = parse_config({"pendo": {"api_key": KEY, "options": {"cookieDomain": domain}}})
    assert config.pendo.options.for_agent() == {"cookieDomain": domain}


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        ({}, ["pendo: is required but missing; add a [pendo] table with api_key"]),
        (
            {"pendo": {}},
            [
                "pendo.api_key: is required but missing; add api_key = ... under [pendo]: your Pendo "
                "subscription's API key (Pendo: Settings > Subscription Settings)"
            ],
        ),
        ({"pendo": {"api_key": KEY, "region": "us"}}, ["pendo.region: 'us' is not one of io, eu, us1, jp, au, gov"]),
        ({"pendo": {"api_key": 12}}, ["pendo.api_key: expected a string, got an integer 12"]),
        (
            {"pendo": {"api_key": "my key"}},
            [
                "pendo.api_key: 'my key' is not a Pendo API key; copy it from Pendo (letters, digits, '-' and '_', "
                "e.g. 1a2b3c4d-0000-4000-8000-123456789abc)"
            ],
        ),
        (
            {"pendo": {"api_key": KEY, "regoin": "eu"}},
            [
                "pendo.regoin: unknown key; did you mean 'region'? allowed keys here: api_key, region, content_host, "
                "options, nonce"
            ],
        ),
        (
            {"pendo": {"api_key": KEY}, "segment": {}},
            [
                "segment: unknown key; allowed keys here: pendo, source, on_load, subscriptions, logout, consent, "
                "build, webhook, metadata, guide_events, audiences"
            ],
        ),
        (
            {"pendo": {"api_key": KEY, "content_host": "javascript:alert(1)"}},
            [
                "pendo.content_host: 'javascript:alert(1)' is not a host name; give the CNAME host only, with no "
                "path, e.g. pendo-static.example.com"
            ],
        ),
        (
            {"pendo": {"api_key": KEY, "content_host": "https://x/ path"}},
            [
                "pendo.content_host: 'https://x/ path' is not a host name; give the CNAME host only, with no path, "
                "e.g. pendo-static.example.com"
            ],
        ),
        (
            {"pendo": {"api_key": KEY, "content_host": "http://pendo.example.com"}},
            [
                "pendo.content_host: 'http://pendo.example.com' must be served over https; give the host alone, "
                "e.g. pendo.example.com"
            ],
        ),
        ({"pendo": {"api_key": KEY, "region": True}}, ["pendo.region: True is not one of io, eu, us1, jp, au, gov"]),
        (
            {"pendo": {"api_key": KEY}, "build": {"target": "es5"}},
            [
                "build.target: 'es5' is not one of es2015, es2016, es2017, es2018, es2019, es2020, es2021, es2022, "
                "es2023, es2024, esnext"
            ],
        ),
        ({"pendo": "yes"}, ["pendo: expected a table, got a string 'yes'"]),
    ],
)
def test_invalid_config_names_the_field_the_value_and_the_fix(data: dict[str, object], expected: list[str]) -> None:
    assert problems(data) == expected


@pytest.mark.parametrize(
    "pendo",
    [
        {"api_key": "abc\n"},
        {"api_key": "abc", "content_host": "pendo.example.com\n"},
        {"api_key": "abc", "nonce": "abcdefgh12\n"},
    ],
)
def test_a_trailing_newline_is_not_part_of_a_valid_value(pendo: dict[str, str]) -> None:
    assert len(problems({"pendo": pendo})) == 1


def test_every_problem_is_reported_at_once() -> None:
    found = problems({"pendo": {"api_key": "", "region": "mars", "cname": "x"}, "build": {"target": 2017}})
    assert [line.split(":")[0] for line in found] == ["pendo.api_key", "pendo.region", "pendo.cname", "build.target"]


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        (b"[pendo\napi_key = 1", "TOML syntax error: "),
        (b"\xff\xfe[pendo]", "is not UTF-8 (bad byte at offset 0); save the file as UTF-8"),
        (b"", "pendo: is required but missing"),
    ],
)
def test_unreadable_files_are_config_errors(tmp_path: Path, content: bytes, expected: str) -> None:
    path = tmp_path / "pendo.toml"
    path.write_bytes(content)
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    assert caught.value.problems[0].startswith(expected)
    assert str(caught.value).startswith(f"{path}: 1 config problem:")


def test_a_directory_or_a_missing_file_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="is a directory"):
        load_config(tmp_path)
    with pytest.raises(ConfigError, match="file not found"):
        load_config(tmp_path / "nope.toml")


def test_digest_ignores_formatting_but_not_values(tmp_path: Path) -> None:
    first = tmp_path / "a.toml"
    second = tmp_path / "b.toml"
    first.write_text(f'[pendo]\napi_key = "{KEY}"\nregion = "eu"\n')
    second.write_text(f'# comment\n[pendo]\nregion="eu"\napi_key="{KEY}"\n\n[build]\ntarget = "es2017"\n')
    assert config_digest(load_config(first)) == config_digest(load_config(second))
    assert config_digest(load_config(first)) != config_digest(parse_config({"pendo": {"api_key": KEY}}))
