"""The test kit in this suite: the `pendo` and `segment` fixtures against a page served from a local folder."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Page

from generator.paths import SITE_DIR
from generator.testing.receivers import PendoReceiver, SegmentReceiver
from tests.conftest import BuildScript
from tests.support.static_site import serving_folder

PAGE = """<!doctype html><html><head><title>App</title>
<script src="/segment-snippet.js" data-write-key="wk_kit"></script>
{tag}
<script>
analytics.identify('u-1', {{ plan: 'pro', email: 'ada@example.com' }});
analytics.group('acme', {{ name: 'Acme', seats: 12 }});
analytics.track('Report Exported', {{ format: 'csv' }});
</script></head><body>app</body></html>
"""


@pytest.fixture
def site(tmp_path: Path, build_script: BuildScript) -> Iterator[tuple[str, Path]]:
    """A folder served on localhost holding the snippet and a build of the default config."""
    script = build_script()
    shutil.copy(script, tmp_path / "segment-pendo.min.js")
    shutil.copy(SITE_DIR / "segment-snippet.js", tmp_path / "segment-snippet.js")
    with serving_folder(tmp_path) as origin:
        yield origin, tmp_path


def _open(page: Page, site: tuple[str, Path], *, tagged: bool = True, name: str = "index.html") -> None:
    origin, folder = site
    tag = '<script src="/segment-pendo.min.js"></script>' if tagged else ""
    (folder / name).write_text(PAGE.format(tag=tag))
    page.goto(f"{origin}/{name}")


@pytest.mark.browser
def test_real_agent_visitor_account_events_and_segment(
    page: Page, pendo: PendoReceiver, segment: SegmentReceiver, site: tuple[str, Path]
) -> None:
    _open(page, site)
    assert pendo.agent == "real"
    pendo.expect_visitor("u-1", plan="pro", email="ada@example.com", timeout=15)
    pendo.expect_account("acme", name="Acme", seats=12)
    event = pendo.expect_event("Report Exported", format="csv")
    assert event.properties == {"format": "csv"}
    pendo.expect_no_event("Never Sent", timeout=0.5)
    segment.expect_event("identify", userId="u-1", traits={"plan": "pro"})
    segment.expect_event("track", "Report Exported", properties={"format": "csv"})
    assert [call.method for call in pendo.calls][:1] == ["initialize"]
    assert pendo.blocked == []


@pytest.mark.browser
@pytest.mark.segment_pendo(agent="stand-in")
def test_stand_in_agent_records_the_same(page: Page, pendo: PendoReceiver, site: tuple[str, Path]) -> None:
    _open(page, site)
    assert pendo.agent == "stand-in"
    pendo.expect_visitor("u-1", plan="pro")
    pendo.expect_account("acme", seats=12)
    pendo.expect_event("Report Exported", format="csv")
    assert page.evaluate("() => pendo.getVisitorId()") == "u-1"


@pytest.mark.browser
@pytest.mark.parametrize("agent", ["real", pytest.param("stand-in", marks=pytest.mark.segment_pendo(agent="stand-in"))])
def test_a_wrong_trait_fails_saying_what_pendo_got(
    page: Page, pendo: PendoReceiver, site: tuple[str, Path], agent: str
) -> None:
    _open(page, site)
    assert pendo.agent == agent
    pendo.expect_visitor("u-1", timeout=15)
    with pytest.raises(AssertionError) as failure:
        pendo.expect_visitor("u-1", plan="enterprise", timeout=0.5)
    message = str(failure.value)
    assert "plan: expected 'enterprise', got 'pro'" in message
    assert "Pendo got: id='u-1'" in message


@pytest.mark.browser
def test_a_page_without_the_tag_fails_naming_the_missing_script(
    page: Page, pendo: PendoReceiver, site: tuple[str, Path]
) -> None:
    _open(page, site, tagged=False)
    with pytest.raises(AssertionError) as failure:
        pendo.expect_visitor("u-1", timeout=1)
    assert "never requested Pendo's agent" in str(failure.value)


@pytest.mark.browser
def test_unknown_hosts_are_aborted_and_listed(page: Page, pendo: PendoReceiver, site: tuple[str, Path]) -> None:
    origin, folder = site
    (folder / "third.html").write_text('<img src="https://tracker.example.net/pixel.gif">')
    page.goto(f"{origin}/third.html")
    page.wait_for_load_state("load")
    assert pendo.blocked == ["https://tracker.example.net/pixel.gif"]
    with pytest.raises(AssertionError) as failure:
        pendo.expect_event("Anything", timeout=0.2)
    assert "aborted requests to unknown hosts: tracker.example.net" in str(failure.value)
