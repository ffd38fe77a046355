"""The README's figures are the suite's own: each count there is the length of the list a test checks."""

from __future__ import annotations

import re
from pathlib import Path

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
