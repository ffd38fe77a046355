"""`python -m generator bench`: what the script costs a page, and what building it costs.

Prints a table and writes JSON. Sizes are measured for every example config; the config with every
feature on must stay within the gzip budget, or the benchmark (not the test suite) fails. Browser
figures come from Debian's Chromium against the demo server on loopback; the Pendo agent is left
unreachable, so they measure this script's own work, not the agent's.
"""

from __future__ import annotations

import copy
import json
import statistics
import sys
import tempfile
import threading
import time
import tomllib
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from generator.bundle import (
    MINIFIED_NAME,
    MODULE_NAME,
    bundle_with_esbuild,
    esbuild_version,
    find_esbuild,
    require_esbuild,
)
from generator.chromium import CHROMIUM_FLAGS, chromium_executable
from generator.config_loader import load_config, parse_config
from generator.errors import GeneratorError
from generator.manifest import gzip_size
from generator.paths import DEMO_CONFIG, EXAMPLE_CONFIGS_DIR
from generator.pipeline import build
from generator.render import render

# The size budgets: gzip bytes of segment-pendo.min.js at level 9, as the manifest measures.
GZIP_BUDGETS = {"minimal": 2_000, "every-feature": 2_500}
# For scale: Segment's Pendo Web (Actions) destination built from action-destinations at 970a17e.
SEGMENT_DESTINATION = {"min": 210_942, "gzip": 63_688}
EXAMPLE_CONFIGS = [
    *sorted(EXAMPLE_CONFIGS_DIR.glob("*.toml")),
    DEMO_CONFIG,
]
PLUGIN_NAME = "Pendo Web (segment-pendo)"
# Calls per method through analytics.js (each takes milliseconds there), sized so that the whole bench
# finishes within four minutes on two cores; the script's own work is measured on more events, as it is fast.
DEFAULT_CALLS = 2_000
OWN_WORK_EVENTS = 10_000
_METHODS = ("identify", "group", "track")


class BenchError(GeneratorError):
    """The benchmark could not run (a missing browser or package)."""


@dataclass(frozen=True)
class SizeRow:
    """One config's bundle sizes: the script's, and the ES module's gzip (None where the client takes no plugin)."""

    config: str
    minified: int
    gzip: int
    brotli: int
    module_gzip: int | None = None


def measure_sizes(configs: list[Path]) -> list[SizeRow]:
    """Build each config and measure its minified script, and the ES module an app's bundle would grow by."""
    import brotli  # noqa: PLC0415  (a benchmark-only dependency)

    rows = []
    with tempfile.TemporaryDirectory() as work:
        for config in configs:
            out = Path(work) / config.stem
            with_module = load_config(config).source.client == "segment"
            build(config, out, bundler="esbuild", output_format="both" if with_module else "script")
            data = (out / MINIFIED_NAME).read_bytes()
            module_gzip = gzip_size((out / MODULE_NAME).read_bytes()) if with_module else None
            brotli_size = len(brotli.compress(data, quality=11))
            rows.append(SizeRow(config.stem, len(data), gzip_size(data), brotli_size, module_gzip))
    return rows


def _without(*path: str) -> Callable[[dict[str, Any]], None]:
    def edit(data: dict[str, Any]) -> None:
        table = data
        for key in path[:-1]:
            table = table.get(key, {})
        table.pop(path[-1], None)

    return edit


def _without_page_subscriptions(data: dict[str, Any]) -> None:
    data["subscriptions"] = [item for item in data.get("subscriptions", []) if item.get("action") != "page"]


def _without_logout(data: dict[str, Any]) -> None:
    data.setdefault("logout", {})["clear_session"] = False


def _without_key_filters(data: dict[str, Any]) -> None:
    for key in ("visitor_keys", "account_keys"):
        data.get("on_load", {}).pop(key, None)


# What the budget config turns on, each with the edit that turns it off again.
FEATURES: list[tuple[str, Callable[[dict[str, Any]], None]]] = [
    ("custom subscriptions instead of Segment's presets", _without("subscriptions")),
    ("a page subscription", _without_page_subscriptions),
    ("the consent gate", _without("consent")),
    ("clearSession on analytics.reset()", _without_logout),
    ("agent options", _without("pendo", "options")),
    ("on-load key filters", _without_key_filters),
    ("a custom analytics global", _without("source")),
    ("a CNAME host", _without("pendo", "content_host")),
]


def measure_feature_costs(config_path: Path) -> list[dict[str, Any]]:
    """Gzip bytes each feature of a config adds: its script's size minus the size without that feature."""
    binary = require_esbuild()
    data = tomllib.loads(config_path.read_text(encoding="utf-8"))

    def gzip_bytes(variant: dict[str, Any]) -> int:
        config = parse_config(variant, source=config_path.name)
        with tempfile.TemporaryDirectory() as work:
            modules = render(config, Path(work))
            bundle = bundle_with_esbuild(binary, Path(work), modules, config.build.target)
        return gzip_size(bundle.minified.encode())

    whole = gzip_bytes(data)
    costs = []
    for name, turn_off in FEATURES:
        variant = copy.deepcopy(data)
        turn_off(variant)
        costs.append({"feature": name, "gzip": whole - gzip_bytes(variant)})
    return costs


def measure_build_times(config: Path, runs: int) -> dict[str, float]:
    """Median wall time of a whole build and of the esbuild step alone, in milliseconds."""
    binary = require_esbuild()
    loaded = load_config(config)
    whole, bundling = [], []
    with tempfile.TemporaryDirectory() as work:
        for run in range(runs):
            start = time.perf_counter()
            build(config, Path(work) / f"out{run}", bundler="esbuild")
            whole.append((time.perf_counter() - start) * 1000)
        source_dir = Path(work) / "src"
        modules = render(loaded, source_dir)
        for _ in range(runs):
            start = time.perf_counter()
            bundle_with_esbuild(binary, source_dir, modules, loaded.build.target)
            bundling.append((time.perf_counter() - start) * 1000)
    return {"build_ms": statistics.median(whole), "esbuild_ms": statistics.median(bundling)}


CALL_LOOP = """async ({method, calls}) => {
  const options = {integrations: {'Segment.io': false}};
  const started = performance.now();
  const pending = [];
  for (let i = 0; i < calls; i += 1) {
    if (method === 'identify') pending.push(analytics.identify('bench-user', {i: i, plan: 'pro'}, options));
    else if (method === 'group') pending.push(analytics.group('bench-group', {i: i, seats: 3}, options));
    else pending.push(analytics.track('Bench Event', {i: i, path: '/bench'}, options));
  }
  await Promise.all(pending);
  return performance.now() - started;
}"""

# One call at a time: the latency a single call sees, without analytics.js's queue of all the calls in flight.
SEQUENTIAL_LOOP = """async ({method, calls}) => {
  const options = {integrations: {'Segment.io': false}};
  const started = performance.now();
  for (let i = 0; i < calls; i += 1) {
    if (method === 'identify') await analytics.identify('bench-user', {i: i, plan: 'pro'}, options);
    else if (method === 'group') await analytics.group('bench-group', {i: i, seats: 3}, options);
    else await analytics.track('Bench Event', {i: i, path: '/bench'}, options);
  }
  return performance.now() - started;
}"""

# The script's own work per event: its destination plugin called directly, as analytics.js would, with
# events shaped as analytics.js delivers them (Pendo's agent is unreachable, so calls end in its queue).
OWN_WORK_LOOP = """({name, method, calls}) => {
  const plugin = analytics.queue.plugins.find((candidate) => candidate.name === name);
  const base = {
    messageId: 'bench', anonymousId: 'anon-bench', userId: 'bench-user', timestamp: new Date().toISOString(),
    context: {page: {url: location.href, path: '/bench', title: 'bench'}, library: {name: 'analytics.js'}},
    integrations: {},
  };
  const events = {
    identify: (i) => ({...base, type: 'identify', traits: {i: i, plan: 'pro', email: 'b@example.com'}}),
    group: (i) => ({...base, type: 'group', groupId: 'bench-group', traits: {i: i, seats: 3}}),
    track: (i) => ({...base, type: 'track', event: 'Bench Event', properties: {i: i, path: '/bench'}}),
  };
  const contexts = [];
  for (let i = 0; i < calls; i += 1) contexts.push({event: events[method](i)});
  const started = performance.now();
  for (const context of contexts) plugin[method](context);
  return performance.now() - started;
}"""

# Runs the script inline: it executes inside appendChild, so the clock brackets it exactly.
FIRST_CALL_AFTER_LOAD = """(code) => {
  window.pendo = {initialize: function () { window.firstPendoCall = performance.now(); }};
  const script = document.createElement('script');
  script.textContent = code;
  const started = performance.now();
  document.head.appendChild(script);
  return window.firstPendoCall - started;
}"""


def measure_browser(script: str, calls: int) -> dict[str, Any]:
    """Per-call cost with and without the script, and the time to its first Pendo call."""
    try:
        from playwright.sync_api import Route, sync_playwright  # noqa: PLC0415
    except ImportError as error:
        raise BenchError("playwright is not installed: run `bash tests/setup.sh --with-chromium`") from error

    with _demo_server() as origin, sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium_executable(), args=CHROMIUM_FLAGS)
        page = browser.new_page()
        snippet_page = (
            '<!doctype html><script src="/segment-snippet.js" data-write-key="demo_write_key" '
            'data-cdn="/segment-cdn"></script><script>window.scriptStarted = performance.now();'
            "window.pendo = {initialize: function () { window.firstPendoCall = performance.now(); }};</script>"
            f"<script>{script}</script>"
        )

        def loopback_only(route: Route) -> None:
            if route.request.url == f"{origin}/bench-snippet.html":
                route.fulfill(body=snippet_page, content_type="text/html")
            elif route.request.url.startswith(origin):
                route.continue_()
            else:
                route.abort("blockedbyclient")

        page.route("**/*", loopback_only)
        page.goto(f"{origin}/bench.html")
        page.wait_for_function("() => window.analytics && analytics.initialized === true")
        _stage(f"analytics.js without the script: {calls:,} calls in flight, then one at a time, per method")
        for method in _METHODS:
            page.evaluate(CALL_LOOP, {"method": method, "calls": calls // 10})
        without = {method: page.evaluate(CALL_LOOP, {"method": method, "calls": calls}) for method in _METHODS}
        sequential = max(1, calls // 10)
        without_one = {
            method: page.evaluate(SEQUENTIAL_LOOP, {"method": method, "calls": sequential}) for method in _METHODS
        }
        page.add_script_tag(content=script)
        page.wait_for_function("(name) => analytics.queue.plugins.some((p) => p.name === name)", arg=PLUGIN_NAME)
        _stage("the same with the script")
        for method in _METHODS:
            page.evaluate(CALL_LOOP, {"method": method, "calls": calls // 10})
        with_script = {method: page.evaluate(CALL_LOOP, {"method": method, "calls": calls}) for method in _METHODS}
        with_one = {
            method: page.evaluate(SEQUENTIAL_LOOP, {"method": method, "calls": sequential}) for method in _METHODS
        }
        _stage(f"the script's own work: its plugin called directly, {OWN_WORK_EVENTS:,} events per method, median of 3")
        own_work = {
            method: statistics.median(
                page.evaluate(OWN_WORK_LOOP, {"name": PLUGIN_NAME, "method": method, "calls": OWN_WORK_EVENTS})
                for _ in range(3)
            )
            for method in _METHODS
        }
        _stage("time to the first Pendo call")

        page.goto(f"{origin}/bench.html")
        page.wait_for_function("() => window.analytics && analytics.initialized === true")
        after_load = page.evaluate(FIRST_CALL_AFTER_LOAD, script)
        page.goto(f"{origin}/bench-snippet.html")
        page.wait_for_function("() => window.firstPendoCall !== undefined")
        with_snippet = page.evaluate("() => window.firstPendoCall - window.scriptStarted")
        browser.close()

    per_call = {
        method: {
            "without_us": without[method] * 1000 / calls,
            "with_us": with_script[method] * 1000 / calls,
            "ratio": with_script[method] / without[method],
            "one_at_a_time_without_us": without_one[method] * 1000 / sequential,
            "one_at_a_time_with_us": with_one[method] * 1000 / sequential,
            "own_work_us": own_work[method] * 1000 / OWN_WORK_EVENTS,
        }
        for method in _METHODS
    }
    return {
        "calls_per_method": calls,
        "per_call_us": per_call,
        "first_pendo_call_ms": {"analytics_already_loaded": after_load, "right_after_snippet": with_snippet},
    }


@contextmanager
def _demo_server() -> Iterator[str]:
    from generator.demo.server import make_server  # noqa: PLC0415

    server = make_server(DEMO_CONFIG, port=0)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def _stage(text: str) -> None:
    """Progress on stderr, as each stage starts: the whole run takes minutes."""
    print(f"bench: {text}", file=sys.stderr, flush=True)


def budget_verdicts(sizes: list[SizeRow]) -> list[dict[str, Any]]:
    """Each budgeted config's gzip size against its budget."""
    by_config = {row.config: row for row in sizes}
    return [
        {"config": config, "gzip_limit": limit, "gzip": by_config[config].gzip, "ok": by_config[config].gzip <= limit}
        for config, limit in GZIP_BUDGETS.items()
    ]


def run(json_path: Path, *, calls: int = DEFAULT_CALLS, runs: int = 5, quick: bool = False) -> int:
    """Run everything (quick: sizes and budgets only), print the table, write the JSON; 1 when a budget is exceeded."""
    _stage(f"building and measuring {len(EXAMPLE_CONFIGS)} example configs")
    sizes = measure_sizes(EXAMPLE_CONFIGS)
    budgets = budget_verdicts(sizes)
    binary = find_esbuild()
    report: dict[str, Any] = {
        "esbuild": esbuild_version(binary) if binary else None,
        "sizes": [row.__dict__ for row in sizes],
        "budgets": budgets,
        "segment_pendo_web_actions": SEGMENT_DESTINATION,
    }
    if not quick:
        _stage("what each of every-feature's features adds (one build per feature)")
        report["feature_costs"] = measure_feature_costs(
            next(path for path in EXAMPLE_CONFIGS if path.stem == "every-feature")
        )
        _stage(f"build time (median of {runs})")
        report["build"] = measure_build_times(DEMO_CONFIG, runs)
        with tempfile.TemporaryDirectory() as work:
            build(DEMO_CONFIG, Path(work), bundler="esbuild")
            script = (Path(work) / MINIFIED_NAME).read_text()
        report["browser"] = measure_browser(script, calls)
    json_path.parent.mkdir(parents=True, exist_ok=True)
    json_path.write_text(json.dumps(report, indent=2) + "\n")
    print(format_report(report))
    print(f"\nwrote {json_path}")
    return 0 if all(budget["ok"] for budget in budgets) else 1


def format_report(report: dict[str, Any]) -> str:
    """The human-readable table."""
    lines = ["bundle (segment-pendo.min.js)        min B   gzip B  brotli B   .mjs gzip B"]
    for row in report["sizes"]:
        module = "-" if row.get("module_gzip") is None else row["module_gzip"]
        lines.append(f"  {row['config']:<32} {row['minified']:>7} {row['gzip']:>8} {row['brotli']:>9} {module:>13}")
    segment = report["segment_pendo_web_actions"]
    lines.append(f"  {'Segment Pendo Web (Actions)':<32} {segment['min']:>7} {segment['gzip']:>8} {'-':>9} {'-':>13}")
    for budget in report["budgets"]:
        verdict = "OK" if budget["ok"] else "OVER BUDGET"
        lines.append(f"budget: {budget['config']} {budget['gzip']} B gzip <= {budget['gzip_limit']} B: {verdict}")
    if "browser" not in report:
        return "\n".join(lines)
    lines.append("what every-feature's features add (gzip B, each measured by turning it off)")
    for cost in report["feature_costs"]:
        lines.append(f"  {cost['feature']:<52} {cost['gzip']:>5}")
    browser = report["browser"]
    lines.append(f"\nper call, {browser['calls_per_method']:,} calls each    without us   with us   ratio")
    for method, figures in browser["per_call_us"].items():
        lines.append(
            f"  {method:<28} {figures['without_us']:>8.1f} µs {figures['with_us']:>6.1f} µs {figures['ratio']:>6.2f}x"
        )
    lines.append(f"one call at a time, {max(1, browser['calls_per_method'] // 10):,} calls each")
    for method, figures in browser["per_call_us"].items():
        without, with_us = figures["one_at_a_time_without_us"], figures["one_at_a_time_with_us"]
        lines.append(f"  {method:<28} {without:>8.1f} µs {with_us:>6.1f} µs {with_us / without:>6.2f}x")
    lines.append("the script's own work per event (its plugin called directly)")
    for method, figures in browser["per_call_us"].items():
        lines.append(f"  {method:<28} {figures['own_work_us']:>8.1f} µs")
    first = browser["first_pendo_call_ms"]
    lines.append(
        f"\nfirst Pendo call after the script runs: {first['analytics_already_loaded']:.2f} ms "
        f"(analytics.js loaded), {first['right_after_snippet']:.1f} ms (right after the snippet)"
    )
    lines.append(
        f"build: {report['build']['build_ms']:.0f} ms median, esbuild step {report['build']['esbuild_ms']:.0f} ms"
    )
    return "\n".join(lines)
