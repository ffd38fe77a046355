"""Shared fixtures: Debian's Chromium for pytest-playwright, built scripts, and the fake internet."""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import BrowserContext, Page

from generator.chromium import CHROMIUM_FLAGS, chromium_executable
from generator.pipeline import build
from tests.support.fake_internet import FakeInternet
from tests.support.installed_wheel import installed  # noqa: F401  (a fixture: the wheel in a fresh virtualenv)
from tests.support.outboxes import new_outbox  # noqa: F401  (a fixture: each outbox store in turn)
from tests.support.postgres import postgres_cluster  # noqa: F401  (a fixture: the throwaway PostgreSQL cluster)
from tests.support.shop import Shop

TESTS_DIR = Path(__file__).parent
DEFAULT_API_KEY = "5e5b1b2c-7d0a-4d6e-9b1f-3c2a1d0e9f8a"


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("segment-pendo")
    group.addoption(
        "--update-golden",
        action="store_true",
        default=False,
        help="rewrite tests/golden/ from the current templates instead of comparing (review the diff after)",
    )


@pytest.fixture(scope="session")
def update_golden(pytestconfig: pytest.Config) -> bool:
    return bool(pytestconfig.getoption("--update-golden"))


@pytest.fixture(scope="session")
def browser_type_launch_args(browser_type_launch_args: dict[str, Any]) -> dict[str, Any]:
    """Debian's chromium: Playwright's own browser download is not possible here."""
    return {**browser_type_launch_args, "executable_path": chromium_executable(), "args": CHROMIUM_FLAGS}


BuildScript = Callable[..., Path]


@pytest.fixture(scope="session")
def build_script(tmp_path_factory: pytest.TempPathFactory) -> BuildScript:
    """Build (once per config text and bundler) and return the path of segment-pendo.min.js."""
    cache: dict[tuple[str, str], Path] = {}

    def _build(config_text: str | None = None, *, bundler: str = "esbuild", name: str = "segment-pendo.min.js") -> Path:
        text = config_text if config_text is not None else default_config()
        key = (text, bundler)
        if key not in cache:
            digest = hashlib.sha256(f"{bundler}\n{text}".encode()).hexdigest()[:12]
            work = tmp_path_factory.mktemp(f"build-{digest}")
            config_path = work / "config.toml"
            config_path.write_text(text)
            build(config_path, work / "out", bundler=bundler)  # type: ignore[arg-type]
            cache[key] = work / "out"
        return cache[key] / name

    return _build


def default_config(**pendo: str) -> str:
    """A minimal config text, with [pendo] keys overridden."""
    values = {"api_key": DEFAULT_API_KEY, **pendo}
    lines = ["[pendo]", *(f'{key} = "{value}"' for key, value in values.items())]
    return "\n".join(lines) + "\n"


@pytest.fixture
def internet(context: BrowserContext) -> FakeInternet:
    return FakeInternet(context)


@pytest.fixture
def shop_factory(page: Page, internet: FakeInternet) -> Iterator[Callable[[Path], Shop]]:
    """Make a Shop around a built script; at teardown, no page error and no request left the machine."""
    shops: list[Shop] = []

    def _make(script: Path) -> Shop:
        shop = Shop(page, internet, script)
        shops.append(shop)
        return shop

    yield _make
    for shop in shops:
        assert shop.page_errors == [], f"errors reached the page: {shop.page_errors}"
    assert internet.unexpected == [], f"requests that would have left the machine: {internet.unexpected}"
