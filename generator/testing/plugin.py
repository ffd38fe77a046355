"""segment-pendo's pytest plugin: the `pendo` and `segment` fixtures over pytest-playwright's `context`.

Loaded wherever segment-pendo is installed (entry point `pytest11`), it only adds options, ini keys and a
marker until a test asks for a fixture: Playwright and the config are read then, never at start-up.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from generator.errors import GeneratorError

if TYPE_CHECKING:
    from generator.testing.agents import AgentSource
    from generator.testing.network import Network, PendoHosts
    from generator.testing.receivers import PendoReceiver, SegmentReceiver

MARKER = "segment_pendo"


def pytest_addoption(parser: pytest.Parser) -> None:
    """The kit's option and ini keys."""
    group = parser.getgroup("segment-pendo", "segment-pendo test kit (the pendo and segment fixtures)")
    group.addoption(
        "--segment-pendo-agent",
        default=None,
        metavar="PATH",
        help="the @pendo/agent folder to serve to pages, or `stand-in` (default: node_modules of the rootdir "
        "and its parents, else the kit's recording stand-in)",
    )
    parser.addini("segment_pendo_config", "the segment-pendo config (pendo.toml) the pages were built from")
    parser.addini("segment_pendo_agent", "the @pendo/agent folder to serve to pages, or `stand-in`")
    parser.addini(
        "segment_pendo_allow_hosts",
        "more hosts (besides localhost) whose requests go through to the network",
        type="linelist",
        default=[],
    )


def pytest_configure(config: pytest.Config) -> None:
    """Register the marker."""
    config.addinivalue_line(
        "markers",
        f"{MARKER}(config=None, agent=None): the segment-pendo config and agent for this test's pages",
    )


@pytest.fixture
def segment_pendo_network(request: pytest.FixtureRequest) -> Network:
    """The browser context's routing: Pendo's and Segment's hosts answered locally and recorded."""
    from generator.testing.network import Network  # noqa: PLC0415  (Playwright's side loads on first use)

    marker = request.node.get_closest_marker(MARKER)
    marked = dict(marker.kwargs) if marker is not None else {}
    try:
        agent = _agent(request.config, marked.get("agent"))
        hosts = _hosts(request, marked.get("config"))
    except GeneratorError as error:
        pytest.fail(f"segment-pendo: {error}", pytrace=False)
    allowed = frozenset(host.lower() for host in request.config.getini("segment_pendo_allow_hosts"))
    network = Network(agent, hosts, allowed)
    network.install(request.getfixturevalue("context"))
    return network


@pytest.fixture
def pendo(segment_pendo_network: Network, request: pytest.FixtureRequest) -> PendoReceiver:
    """What Pendo receives from this test's pages, with waiting assertions (expect_visitor, expect_event, ...)."""
    from generator.testing.receivers import PendoReceiver  # noqa: PLC0415

    return PendoReceiver(segment_pendo_network, request.getfixturevalue("context"))


@pytest.fixture
def segment(segment_pendo_network: Network, request: pytest.FixtureRequest) -> SegmentReceiver:
    """What Segment's API receives from analytics.js on this test's pages (expect_event)."""
    from generator.testing.receivers import SegmentReceiver  # noqa: PLC0415

    return SegmentReceiver(segment_pendo_network, request.getfixturevalue("context"))


def _agent(config: pytest.Config, marked: object) -> AgentSource:
    from generator.testing.agents import find_agent  # noqa: PLC0415

    named = marked or config.getoption("--segment-pendo-agent") or config.getini("segment_pendo_agent") or None
    base = config.inipath.parent if config.inipath is not None else config.rootpath
    if isinstance(named, str) and named != "stand-in" and not Path(named).expanduser().is_absolute():
        named = str(base / named)
    return find_agent(str(named) if named else None, config.rootpath)


def _hosts(request: pytest.FixtureRequest, marked: object) -> PendoHosts:
    from urllib.parse import urlsplit  # noqa: PLC0415

    from generator.config_loader import load_config  # noqa: PLC0415
    from generator.testing.network import PendoHosts  # noqa: PLC0415

    config = request.config
    if marked is not None:
        path = Path(str(marked)).expanduser()
        if not path.is_absolute():
            beside_test = Path(str(request.node.path)).parent / path
            path = beside_test if beside_test.exists() else config.rootpath / path
    elif ini := config.getini("segment_pendo_config"):
        base = config.inipath.parent if config.inipath is not None else config.rootpath
        path = base / str(ini)
    else:
        return PendoHosts()
    if not path.is_file():
        raise GeneratorError(f"config {path} does not exist: set segment_pendo_config (ini) or the marker's config=")
    settings = load_config(path).pendo
    options = settings.options
    named = [settings.content_host, options.dataHost, options.contentHost, options.assetHost]
    cname = frozenset((urlsplit(h).hostname or h).lower() for h in named if h)
    return PendoHosts(settings.region, cname)
