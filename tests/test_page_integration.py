"""Putting the script in a page: script_tag, the Jinja global (Flask), the Django tag, and --inline under CSP."""

from __future__ import annotations

import base64
import hashlib
import json
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from jinja2 import Environment
from playwright.sync_api import Page, Route

import generator
from generator.jinja import SegmentPendoExtension, install
from generator.tag import TagError
from tests.conftest import DEFAULT_API_KEY, BuildScript, default_config
from tests.support.fake_internet import FakeInternet, wait_until
from tests.support.page_sites import django_app, flask_app, serving

CONFIG = Path(__file__).parent / "configs" / "minimal.toml"
NONCE_CONFIG = default_config().rstrip("\n") + '\nnonce = "from_script"\n'
CSP_VIOLATIONS = """
window.cspViolations = [];
document.addEventListener('securitypolicyviolation', function (event) {
  window.cspViolations.push(event.violatedDirective + ' ' + event.blockedURI);
});
"""


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Any]]:
    out = tmp_path_factory.mktemp("tag") / "dist"
    return out, generator.build(CONFIG, out)


def test_script_tag_names_the_hashed_file_with_its_sri(built: tuple[Path, dict[str, Any]]) -> None:
    out, manifest = built
    entry, sri = manifest["entry"], manifest["files"][manifest["entry"]]["sri"]
    expected = f'<script src="/{entry}" integrity="{sri}" crossorigin="anonymous"></script>'
    assert generator.script_tag(out) == expected
    assert generator.script_tag(out / "manifest.json") == expected
    assert generator.script_tag(str(out)) == expected
    assert generator.script_tag(manifest) == expected
    assert generator.script_tag(out, prefix="https://cdn.example.com/sp") == expected.replace(
        f'src="/{entry}"', f'src="https://cdn.example.com/sp/{entry}"'
    )
    assert generator.script_tag(out, prefix="") == expected.replace(f'src="/{entry}"', f'src="{entry}"')
    assert generator.script_tag(out, nonce="abc123", crossorigin=None) == (
        f'<script src="/{entry}" integrity="{sri}" nonce="abc123"></script>'
    )


def test_script_tag_escapes_what_it_writes(built: tuple[Path, dict[str, Any]]) -> None:
    out, _ = built
    tag = generator.script_tag(out, prefix='/a"b<c>/', nonce='"><script>alert(1)</script>')
    assert '"><script>' not in tag and "<c>" not in tag
    assert 'src="/a&quot;b&lt;c&gt;/' in tag
    assert 'nonce="&quot;&gt;&lt;script&gt;alert(1)&lt;/script&gt;"' in tag


def test_script_tag_says_what_to_do_without_a_build(tmp_path: Path) -> None:
    with pytest.raises(TagError, match=r"no build here; run `segment-pendo build --config … --out"):
        generator.script_tag(tmp_path / "nothing")
    (tmp_path / "manifest.json").write_text(json.dumps({"files": {}}))
    with pytest.raises(TagError, match=r'has no "entry" script: rebuild it with `segment-pendo build`'):
        generator.script_tag(tmp_path)
    (tmp_path / "manifest.json").write_text("{not json")
    with pytest.raises(TagError, match="not a readable manifest"):
        generator.script_tag(tmp_path)


def test_the_tag_follows_a_rebuild(tmp_path: Path) -> None:
    first = generator.build(CONFIG, tmp_path)["entry"]
    assert first in generator.script_tag(tmp_path)
    second = generator.build(Path(__file__).parent / "configs" / "eu-cname.toml", tmp_path)["entry"]
    assert second != first and second in generator.script_tag(tmp_path)


def test_the_jinja_extension_works_by_name_or_through_install(built: tuple[Path, dict[str, Any]]) -> None:
    out, manifest = built
    by_name = Environment(extensions=["generator.jinja.SegmentPendoExtension"], autoescape=True)
    by_name.segment_pendo_build = out  # type: ignore[attr-defined]
    by_name.segment_pendo_prefix = "/js/"  # type: ignore[attr-defined]
    rendered = by_name.from_string("{{ segment_pendo_tag(nonce=n) }}").render(n="n0nce")
    assert rendered == generator.script_tag(out, prefix="/js/", nonce="n0nce")
    installed = Environment(autoescape=True)
    install(installed, out, prefix="/static/sp/")
    assert isinstance(installed.extensions[SegmentPendoExtension.identifier], SegmentPendoExtension)
    assert f'src="/static/sp/{manifest["entry"]}"' in installed.from_string("{{ segment_pendo_tag() }}").render()


def identify_under_csp(page: Page, internet: FakeInternet, origin: str, user: str) -> None:
    """Open the app's page; the real agent must send the identify and the CSP must report no violation."""
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.add_init_script(CSP_VIOLATIONS)

    def to_the_app(route: Route) -> None:
        route.continue_()

    page.route(f"{origin}/**", to_the_app)
    response = page.goto(origin + "/")
    assert response is not None and response.ok
    policy = response.headers["content-security-policy"]
    nonce = re.search(r"'nonce-([^']+)'", policy).group(1)  # type: ignore[union-attr]
    html = page.content()
    assert re.search(
        r'<script src="/static/segment-pendo/segment-pendo\.[0-9a-f]{10}\.min\.js" integrity="sha384-', html
    )
    # The agent tag the script injected carries this response's nonce.
    page.wait_for_function("() => window.pendo && pendo.isReady && pendo.isReady()", timeout=15_000)
    assert page.evaluate("() => document.querySelector('script[src*=\"/agent/static/\"]').nonce") == nonce
    wait_until(page, lambda: any(e["visitor_id"] == user for e in internet.pendo_events("identify")))
    assert page.evaluate("() => window.cspViolations") == []
    assert errors == []
    assert internet.unexpected == []
    # Every request gets its own nonce.
    second = page.request.get(origin + "/").headers["content-security-policy"]
    assert re.search(r"'nonce-([^']+)'", second).group(1) != nonce  # type: ignore[union-attr]


AppFactory = Callable[[Path, str], Any]


@pytest.mark.browser
@pytest.mark.parametrize(("make_app", "user"), [(flask_app, "flask-user"), (django_app, "django-user")])
def test_a_real_app_serves_the_tag_under_a_nonce_csp_and_pendo_gets_the_identify(
    make_app: AppFactory, user: str, build_script: BuildScript, page: Page, internet: FakeInternet
) -> None:
    build_dir = build_script(NONCE_CONFIG).parent
    with serving(make_app(build_dir, user)) as origin:
        identify_under_csp(page, internet, origin, user)
    assert DEFAULT_API_KEY in internet.agent_requests[0]


HOSTILE_EVENT = "</SCRIPT> <!-- <script> x"
INLINE_CONFIG = (
    default_config()
    + '[[subscriptions]]\naction = "track"\n[subscriptions.mapping]\nevent = '
    + json.dumps(HOSTILE_EVENT)
    + '\n[[subscriptions]]\naction = "identify"\n'
)


@pytest.mark.browser
def test_an_inline_build_runs_under_a_hash_csp(tmp_path: Path, page: Page, internet: FakeInternet) -> None:
    config = tmp_path / "pendo.toml"
    config.write_text(INLINE_CONFIG)
    manifest = generator.build(config, tmp_path / "dist", inline=True)
    element = (tmp_path / "dist" / "segment-pendo.inline.html").read_text()
    # A config value that would end or comment out an inline script stays inside its string literal.
    assert element.count("</script>") == 1 and "<!--" not in element
    page_code = "analytics.identify('inline-user', {plan: 'pro'}); analytics.track('Anything', {});"
    page_hash = "'sha256-" + base64.b64encode(hashlib.sha256(page_code.encode()).digest()).decode() + "'"
    policy = (
        f"default-src 'self'; script-src 'self' {manifest['inline']['csp_hash']} {page_hash} "
        "https://cdn.segment.com https://cdn.pendo.io; "
        "connect-src 'self' https://cdn.segment.com https://api.segment.io https://app.pendo.io; "
        "img-src 'self' data: https://app.pendo.io; style-src 'self' 'unsafe-inline'; object-src 'none'"
    )
    snippet = Path(__file__).parent.parent / "site_demo" / "segment-snippet.js"
    snippet_url = internet.serve_file("/js/segment-snippet.js", snippet)
    html = (
        f'<!doctype html><html><head><script src="{snippet_url}" data-write-key="{internet.write_key}"></script>'
        f"{element}<script>{page_code}</script></head><body>inline</body></html>"
    )
    page.add_init_script(CSP_VIOLATIONS)
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.goto(internet.serve("/inline", html, headers={"Content-Security-Policy": policy}))
    page.wait_for_function("() => window.pendo && pendo.isReady && pendo.isReady()", timeout=15_000)
    wait_until(page, lambda: internet.tracks() != [])
    assert internet.tracks() == [(HOSTILE_EVENT, {}, "inline-user")]
    assert page.evaluate("() => window.cspViolations") == []
    assert errors == [] and internet.unexpected == []
