"""The README: its figures are the suite's own, it documents every config key, and it speaks to users first."""

from __future__ import annotations

import re
import typing
from pathlib import Path

from pydantic import BaseModel

from generator.config import AgentOptions, Config
from tests.test_bad_configs import BAD_CONFIGS
from tests.test_browser_hostile import HOSTILE_CALLS
from tests.test_injection import PAYLOADS

README = (Path(__file__).parent.parent / "README.md").read_text()
# The directory, the missing file and the cyclic mapping are checked beside the matrix.
OTHER_BAD_CONFIGS = 3


def figure(pattern: str) -> int:
    match = re.search(pattern, README)
    assert match, f"README has no figure for {pattern!r}"
    return int(match.group(1).replace(",", ""))


def test_safety_figures_match_the_suite() -> None:
    assert figure(r"\*\*(\d+) bad configs\*\*") == len(BAD_CONFIGS) + OTHER_BAD_CONFIGS
    assert figure(r"\(`tests/test_bad_configs.py`: (\d+) config files") == len(BAD_CONFIGS)
    assert figure(r"\*\*(\d+) injection payloads\*\*") == len(PAYLOADS)
    assert figure(r"\*\*(\d+) hostile events\*\*") == len(HOSTILE_CALLS)


def test_readme_starts_with_the_two_commands() -> None:
    first_block = README.split("```sh\n", 1)[1].split("```", 1)[0].splitlines()
    assert [line.split("#")[0].strip() for line in first_block] == ["bash site_demo/run.sh", "bash tests/run.sh"]


def config_keys(model: type[BaseModel], prefix: str = "") -> list[str]:
    """Every key a config can hold, dotted (pendo.api_key, webhook.covers_web_source, ...)."""
    keys: list[str] = []
    for name, field in model.model_fields.items():
        key = prefix + (field.alias or name)
        keys.append(key)
        for argument in [field.annotation, *typing.get_args(field.annotation)]:
            for candidate in [argument, *typing.get_args(argument)]:
                if isinstance(candidate, type) and issubclass(candidate, BaseModel):
                    keys.extend(config_keys(candidate, key + "."))
    return sorted(set(keys))


def test_every_config_key_is_documented() -> None:
    user_docs = README.split("## Contributing", 1)[0]
    missing = []
    for key in config_keys(Config):
        leaf = key.rsplit(".", 1)[-1]
        if "." not in key:
            documented = f"[{key}]" in user_docs or f"[[{key}]]" in user_docs
        elif key.startswith("pendo.options.") or key == "pendo.options":
            documented = any(form in user_docs for form in (f"`{leaf}`", f".{leaf}`", f"`{key}", f"[{key}]"))
        elif leaf in ("allow", "deny"):
            documented = f"{leaf} = [" in user_docs
        else:
            documented = f"`{key}`" in user_docs
        if not documented:
            missing.append(key)
    assert missing == []
    assert len(AgentOptions.model_fields) > 20


def test_the_subscriptions_rule_sits_next_to_the_config_example() -> None:
    rule = "**Listing `[[subscriptions]]` replaces the presets of the actions it does not list**"
    reference = README.split("### Config reference", 1)[1]
    # The paragraph right before the example, which lists one track subscription.
    assert 0 < reference.index("```toml") - reference.index(rule) < 600


def test_user_docs_use_the_console_script() -> None:
    user_docs = README.split("## Contributing", 1)[0]
    assert ".venv/bin/python -m generator" not in user_docs
    for command in ("build", "check", "serve", "import-segment", "webhook", "relay", "bench"):
        assert f"segment-pendo {command}" in user_docs or f"`{command} " in user_docs, command
    assert "pip install segment-pendo" in user_docs
    quickstart = README.split("## Quickstart", 1)[1].split("## Reference", 1)[0]
    assert all(word in quickstart for word in ("**1. Config.**", "**2. Build**", "**3. Tag**", "Flask", "Django"))
    warning = README.split("#### The double-tracking warning", 1)[1].split("####", 1)[0]
    assert "covers_web_source = false" in warning and "enabled = false" in warning
