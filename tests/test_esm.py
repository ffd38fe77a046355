"""The ES module build: its files and printed import, safe to import where there is no browser, and its types."""

from __future__ import annotations

import json
import os
import re
import subprocess
from pathlib import Path

import pytest

from generator.bundle import find_esbuild
from generator.cli import main
from generator.manifest import gzip_size
from generator.paths import NODE_MODULES
from generator.pipeline import build
from generator.tag import TagError, script_tag

CONFIGS = Path(__file__).parent / "configs"
MINIMAL = CONFIGS / "minimal.toml"
MODULE_FILES = {"segment-pendo.mjs", "segment-pendo.mjs.map", "segment-pendo.d.mts", "manifest.json"}
TSC = NODE_MODULES / ".bin" / "tsc"


@pytest.fixture(scope="module")
def module_build(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("esm") / "segment-pendo"
    build(MINIMAL, out, output_format="esm")
    return out


def test_format_esm_writes_the_module_its_map_and_types_and_prints_the_import(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "segment-pendo"
    assert main(["build", "--config", str(MINIMAL), "--out", str(out), "--format", "esm"]) == 0
    assert {path.name for path in out.iterdir()} == MODULE_FILES
    manifest = json.loads((out / "manifest.json").read_text())
    assert "entry" not in manifest
    assert manifest["module"] == {"file": "segment-pendo.mjs", "types": "segment-pendo.d.mts", "export": "pendoPlugin"}
    module = manifest["files"]["segment-pendo.mjs"]
    assert module["bytes"] == (out / "segment-pendo.mjs").stat().st_size
    assert module["sri"].startswith("sha384-")
    code = (out / "segment-pendo.mjs").read_text()
    assert re.search(r"export\{(\w+ as )?pendoPlugin\};\s*$", code) and "sourceMappingURL" not in code
    printed = capsys.readouterr().out
    assert "import { pendoPlugin } from './segment-pendo/segment-pendo.mjs';" in printed
    assert (
        "AnalyticsBrowser.load({ writeKey, plugins: [pendoPlugin] });  // or analytics.register(pendoPlugin)" in printed
    )
    assert "<script" not in printed
    sources = json.loads((out / "segment-pendo.mjs.map").read_text())["sources"]
    assert {"templates/main.js.jinja", "static/segment-source.js"} <= set(sources)


def test_format_both_writes_the_script_and_the_module_and_the_script_is_unchanged(tmp_path: Path) -> None:
    both = build(MINIMAL, tmp_path / "both", output_format="both")
    script = build(MINIMAL, tmp_path / "script")
    names = {path.name for path in (tmp_path / "both").iterdir()}
    assert MODULE_FILES | {"segment-pendo.min.js", script["entry"]} <= names
    assert both["entry"] == script["entry"]
    for name in ("segment-pendo.min.js", "segment-pendo.js"):
        assert (tmp_path / "both" / name).read_bytes() == (tmp_path / "script" / name).read_bytes()
    assert "module" not in script


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (
            ["--format", "esm", "--inline"],
            "error: --inline writes the script into an inline <script>: build with --format script or both\n",
        ),
        (
            ["--format", "both", "--bundler", "esbuild-py"],
            "error: the ES module needs the esbuild binary (the esbuild-py fallback writes the script only)\n",
        ),
    ],
)
def test_options_the_module_cannot_take_are_one_line_and_write_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], argv: list[str], message: str
) -> None:
    out = tmp_path / "out"
    assert main(["build", "--config", str(MINIMAL), "--out", str(out), *argv]) == 1
    assert capsys.readouterr().err == message
    assert not out.exists()


def test_rudderstack_has_no_module_and_says_so(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "out"
    assert (
        main(["build", "--config", str(CONFIGS / "rudderstack-debug.toml"), "--out", str(out), "--format", "esm"]) == 1
    )
    error = capsys.readouterr().err
    assert error.startswith('error: [source] client = "rudderstack": the ES module is a plugin for Segment')
    assert "--format script" in error and len(error.splitlines()) == 1
    assert not out.exists()


def test_a_global_key_is_reported_unused_by_the_module(tmp_path: Path) -> None:
    manifest = build(CONFIGS / "every-feature.toml", tmp_path, output_format="esm")
    assert (
        "[source] global_key is not used by the ES module (analytics.js hands itself to the plugin)"
        in (manifest["warnings"])
    )


def test_every_feature_module_costs_no_more_than_its_script(tmp_path: Path) -> None:
    manifest = build(CONFIGS / "every-feature.toml", tmp_path, output_format="both")
    files = manifest["files"]
    assert files["segment-pendo.mjs"]["gzip_bytes"] <= files["segment-pendo.min.js"]["gzip_bytes"]
    assert gzip_size((tmp_path / "segment-pendo.mjs").read_bytes()) == files["segment-pendo.mjs"]["gzip_bytes"]


# Each browser global is watched while the module is imported: an access to any is recorded.
IMPORT_WITHOUT_WINDOW = r"""
import { pathToFileURL } from 'node:url';
const watched = ['window', 'document', 'navigator', 'location', 'self', 'top', 'history', 'localStorage',
  'sessionStorage', 'analytics', 'pendo', 'addEventListener', 'setTimeout', 'setInterval', 'fetch',
  'XMLHttpRequest', 'console'];
const touched = [];
for (const name of watched) {
  const had = Object.getOwnPropertyDescriptor(globalThis, name);
  const read = () => (had ? ('value' in had ? had.value : had.get.call(globalThis)) : undefined);
  Object.defineProperty(globalThis, name, {
    configurable: true,
    get() { touched.push(name); return read(); },
    set() { touched.push('set ' + name); },
  });
}
const keys = () => [...Object.getOwnPropertyNames(globalThis), ...Object.getOwnPropertySymbols(globalThis).map(String)];
const before = keys();
let thrown = null;
let module = {};
try {
  module = await import(pathToFileURL(process.argv[2]).href);
} catch (error) {
  thrown = String(error);
}
const touchedOnImport = touched.slice();
const added = keys().filter((key) => !before.includes(key));
const plugin = module.pendoPlugin;
// analytics.js never runs on a server, but a load there must not throw either.
const context = { event: { type: 'track', event: 'Signed Up', properties: {} } };
let loadError = null;
try {
  await plugin.load(context, { on() {}, initialized: true });
} catch (error) {
  loadError = String(error);
}
process.stdout.write(JSON.stringify({
  thrown, touchedOnImport, added, exports: Object.keys(module), name: plugin.name, type: plugin.type,
  alternativeNames: plugin.alternativeNames, loaded: plugin.isLoaded(),
  handlers: ['load', 'track', 'identify', 'group', 'page'].filter((name) => typeof plugin[name] === 'function'),
  trackAnswer: plugin.track(context) === context, loadError,
}));
"""


def test_importing_the_module_without_a_browser_throws_nothing_and_touches_nothing(
    module_build: Path, tmp_path: Path
) -> None:
    harness = tmp_path / "import.mjs"
    harness.write_text(IMPORT_WITHOUT_WINDOW)
    completed = subprocess.run(
        ["node", str(harness), str(module_build / "segment-pendo.mjs")],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    report = json.loads(completed.stdout)
    assert report["thrown"] is None
    assert report["touchedOnImport"] == []
    assert report["added"] == []
    assert report["exports"] == ["pendoPlugin"]
    assert (report["name"], report["type"], report["loaded"]) == ("Pendo Web (segment-pendo)", "destination", True)
    assert report["alternativeNames"] == ["Pendo", "Pendo Web (Actions)"]
    assert report["handlers"] == ["load", "track", "identify", "group", "page"]
    assert report["trackAnswer"] is True and report["loadError"] is None


CONSUMER = """\
import { AnalyticsBrowser, type Plugin } from '@segment/analytics-next';
import { pendoPlugin, type SegmentPendoPlugin } from './segment-pendo/segment-pendo.mjs';

export const analytics = AnalyticsBrowser.load({ writeKey: 'wk_test_1234', plugins: [pendoPlugin] });
export const registered: Promise<unknown> = analytics.register(pendoPlugin);
export const asPlugin: Plugin = pendoPlugin;
export const name: 'Pendo Web (segment-pendo)' = pendoPlugin.name;
export const typed: SegmentPendoPlugin = pendoPlugin;
"""
# An app that installed nothing for the types: only the module and its declarations.
STANDALONE_CONSUMER = """\
import { pendoPlugin } from './segment-pendo/segment-pendo.mjs';

export const plugins = [pendoPlugin];
export const loaded: boolean = pendoPlugin.isLoaded();
"""
MISTAKE = """\
import { pendoPlugin } from './segment-pendo/segment-pendo.mjs';

export const wrong: number = pendoPlugin.name;
"""


def tsc(folder: Path, source: str) -> subprocess.CompletedProcess[str]:
    (folder / "app.ts").write_text(source)
    return subprocess.run(
        [
            str(TSC),
            "--strict",
            "--noEmit",
            "--module",
            "esnext",
            "--moduleResolution",
            "bundler",
            "--target",
            "es2020",
            "--lib",
            "es2020,dom",
            "app.ts",
        ],
        cwd=folder,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


@pytest.fixture
def app_folder(module_build: Path, tmp_path: Path) -> Path:
    """A TypeScript app's source folder with the build copied in as segment-pendo/."""
    app = tmp_path / "app"
    (app / "segment-pendo").mkdir(parents=True)
    for name in ("segment-pendo.mjs", "segment-pendo.d.mts"):
        (app / "segment-pendo" / name).write_bytes((module_build / name).read_bytes())
    return app


def test_tsc_strict_accepts_the_plugin_where_analytics_next_takes_plugins(app_folder: Path) -> None:
    os.symlink(NODE_MODULES, app_folder / "node_modules")
    result = tsc(app_folder, CONSUMER)
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_types_need_no_other_package(app_folder: Path, module_build: Path) -> None:
    declarations = (module_build / "segment-pendo.d.mts").read_text()
    assert not re.search(r"^\s*import\b|\bimport\(|\breference\s+types", declarations, re.MULTILINE)
    result = tsc(app_folder, STANDALONE_CONSUMER)
    assert result.returncode == 0, result.stdout + result.stderr
    mistake = tsc(app_folder, MISTAKE)
    assert mistake.returncode != 0 and "TS2322" in mistake.stdout


def test_the_pinned_typescript_is_installed() -> None:
    package = json.loads((Path(__file__).parent.parent / "package.json").read_text())
    version = package["devDependencies"]["typescript"]
    assert subprocess.run([str(TSC), "--version"], capture_output=True, text=True, check=True).stdout.strip() == (
        f"Version {version}"
    )


def test_an_app_bundler_takes_the_module_as_it_is(module_build: Path, tmp_path: Path) -> None:
    """esbuild (as Vite uses it) bundles an app that imports the module; the export survives minification."""
    (tmp_path / "app.js").write_text(
        f"import {{ pendoPlugin }} from {json.dumps(str(module_build / 'segment-pendo.mjs'))};\n"
        "globalThis.result = pendoPlugin.name;\n"
    )
    binary = find_esbuild()
    assert binary is not None
    subprocess.run(
        [str(binary), "app.js", "--bundle", "--minify", "--format=esm", "--outfile=out.mjs", "--log-level=error"],
        cwd=tmp_path,
        check=True,
    )
    completed = subprocess.run(
        ["node", "--input-type=module", "-e", "await import('./out.mjs'); process.stdout.write(globalThis.result)"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=True,
    )
    assert completed.stdout == "Pendo Web (segment-pendo)"


def test_a_module_only_build_has_no_script_tag_and_says_why(module_build: Path) -> None:
    with pytest.raises(TagError, match=r"holds the ES module only \(--format esm\): import it in the app's code"):
        script_tag(module_build)


def test_a_linked_map_or_debug_module_names_its_map(tmp_path: Path) -> None:
    build(MINIMAL, tmp_path / "linked", output_format="esm", link_map=True)
    code = (tmp_path / "linked" / "segment-pendo.mjs").read_text()
    assert code.rstrip().endswith("//# sourceMappingURL=segment-pendo.mjs.map")
    build(CONFIGS / "guide-events.toml", tmp_path / "debug", output_format="esm")
    debug = (tmp_path / "debug" / "segment-pendo.mjs").read_text()
    assert debug.rstrip().endswith("//# sourceMappingURL=segment-pendo.mjs.map")
    # The warning about a missing global is the script's alone: the module is handed its client.
    assert "no analytics client" not in debug and "segmentPendoDebug" in debug
