"""Bundling: the esbuild binary, the esbuild-py fallback, and what each does with bad JavaScript."""

from __future__ import annotations

import json
import os
import stat
import subprocess
from pathlib import Path

import pytest

import generator
from generator import bundle
from generator.bundle import NO_ESBUILD, PINNED_ESBUILD_VERSION, bundle_with_esbuild, find_esbuild
from generator.cli import main
from generator.config_loader import load_config
from generator.errors import BundleError
from generator.fallback_bundle import bundle_in_process
from generator.manifest import gzip_size
from generator.pipeline import build
from generator.render import RenderedModule, render

CONFIG = Path(__file__).parent / "configs" / "minimal.toml"
EVERY_FEATURE = Path(__file__).parent / "configs" / "every-feature.toml"
# The decided budgets (issue #13), in gzip bytes at level 9 as the manifest measures them.
DEFAULT_GZIP_BUDGET = 2_000
EVERY_FEATURE_GZIP_BUDGET = 2_500


@pytest.fixture
def rendered(tmp_path: Path) -> tuple[Path, list[RenderedModule]]:
    source_dir = tmp_path / "src"
    return source_dir, render(load_config(CONFIG), source_dir)


def esbuild() -> Path:
    binary = find_esbuild()
    assert binary is not None, "run `npm ci`: the esbuild binary is a pinned npm dependency"
    return binary


def test_esbuild_makes_a_minified_iife_with_a_source_map_of_the_project_files(
    rendered: tuple[Path, list[RenderedModule]],
) -> None:
    source_dir, modules = rendered
    result = bundle_with_esbuild(esbuild(), source_dir, modules, "es2017")
    assert result.bundler == "esbuild 0.28.2"
    assert result.minified.startswith("(()=>{")
    assert "sourceMappingURL" not in result.minified
    assert len(result.minified) < len(result.readable) / 1.8
    assert "export " not in result.readable and "import " not in result.readable
    sources = json.loads(result.source_map)["sources"]
    assert set(sources) >= {"templates/main.js.jinja", "templates/config.js.jinja", "static/pendo-install.js"}
    assert gzip_size(result.minified.encode()) <= DEFAULT_GZIP_BUDGET


def test_a_linked_map_build_names_the_map_and_an_ordinary_one_still_writes_it(tmp_path: Path) -> None:
    plain = build(CONFIG, tmp_path / "plain")
    linked = build(CONFIG, tmp_path / "linked", link_map=True)
    assert "sourceMappingURL" not in (tmp_path / "plain" / "segment-pendo.min.js").read_text()
    assert (
        (tmp_path / "linked" / "segment-pendo.min.js")
        .read_text()
        .rstrip()
        .endswith("//# sourceMappingURL=segment-pendo.min.js.map")
    )
    for manifest in (plain, linked):
        assert manifest["files"]["segment-pendo.min.js.map"]["bytes"] > 1000


@pytest.mark.parametrize(
    ("config", "budget"),
    [
        (CONFIG, DEFAULT_GZIP_BUDGET),
        (EVERY_FEATURE, EVERY_FEATURE_GZIP_BUDGET),
    ],
)
def test_the_scripts_stay_within_their_gzip_budgets(tmp_path: Path, config: Path, budget: int) -> None:
    manifest = build(config, tmp_path, bundler="esbuild")
    assert manifest["files"]["segment-pendo.min.js"]["gzip_bytes"] <= budget


def test_the_readable_script_keeps_names_and_only_the_minified_one_shortens_properties(tmp_path: Path) -> None:
    build(EVERY_FEATURE, tmp_path, bundler="esbuild")
    readable = (tmp_path / "segment-pendo.js").read_text()
    minified = (tmp_path / "segment-pendo.min.js").read_text()
    assert "function identifyCall(" in readable and "userId_" in readable and "// " in readable
    assert "userId_" not in minified


def test_esbuild_lowers_to_the_configured_target(rendered: tuple[Path, list[RenderedModule]]) -> None:
    source_dir, modules = rendered
    (source_dir / "track.js").write_text(
        (source_dir / "track.js").read_text() + "\nexport const later = (o) => o?.x ?? 1;\n"
    )
    (source_dir / "main.js").write_text(
        "import { later } from './track.js';\nlater({});\n" + (source_dir / "main.js").read_text()
    )
    es2017 = bundle_with_esbuild(esbuild(), source_dir, modules, "es2017").readable
    es2020 = bundle_with_esbuild(esbuild(), source_dir, modules, "es2020").readable
    assert "?." not in es2017 and "??" not in es2017
    assert "?." in es2020


def test_esbuild_syntax_error_names_the_file_and_line(rendered: tuple[Path, list[RenderedModule]]) -> None:
    source_dir, modules = rendered
    (source_dir / "track.js").write_text("export function track( {\n")
    with pytest.raises(
        BundleError,
        match=r"esbuild failed \(exit 1\):\n(.|\n)*templates/track\.js\.jinja \(rendered as track\.js\):2:0",
    ):
        bundle_with_esbuild(esbuild(), source_dir, modules, "es2017")


def test_fallback_output_parses_and_maps_lines_back_to_the_sources(
    rendered: tuple[Path, list[RenderedModule]], tmp_path: Path
) -> None:
    source_dir, modules = rendered
    result = bundle_in_process(source_dir, modules)
    assert result.bundler.startswith("esbuild-py 0.1.6")
    assert "NOT minified" in result.warnings[0]
    script = tmp_path / "bundle.js"
    script.write_text(result.readable)
    subprocess.run(["node", "--check", str(script)], check=True)
    source_map = json.loads(result.source_map)
    assert source_map["sources"][-1] == "templates/main.js.jinja"
    assert len(source_map["mappings"].split(";")) == len(result.readable.splitlines())


def test_fallback_turns_esbuild_py_empty_output_into_an_error_naming_the_module(
    rendered: tuple[Path, list[RenderedModule]],
) -> None:
    source_dir, modules = rendered
    (source_dir / "group.js").write_text("export function groupSubscriptions( {\n")
    with pytest.raises(BundleError, match=r"^templates/group\.js\.jinja: esbuild-py could not parse this module"):
        bundle_in_process(source_dir, modules)


def test_fallback_refuses_module_syntax_it_cannot_join(rendered: tuple[Path, list[RenderedModule]]) -> None:
    source_dir, modules = rendered
    (source_dir / "track.js").write_text("export default function () {}\n")
    with pytest.raises(BundleError, match=r"main\.js imports trackSubscriptions that \./track\.js does not export"):
        bundle_in_process(source_dir, modules)


def test_fallback_refuses_clashing_top_level_names(rendered: tuple[Path, list[RenderedModule]]) -> None:
    source_dir, modules = rendered
    (source_dir / "track.js").write_text((source_dir / "track.js").read_text() + "\nconst agentUrl = 1;\n")
    with pytest.raises(BundleError, match="both declare 'agentUrl' at top level"):
        bundle_in_process(source_dir, modules)


def test_esbuild_binary_path_wins_and_must_exist(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    fake = tmp_path / "esbuild"
    fake.write_text("#!/bin/sh\necho 9.9.9\n")
    fake.chmod(fake.stat().st_mode | stat.S_IEXEC)
    monkeypatch.setenv("ESBUILD_BINARY_PATH", str(fake))
    assert find_esbuild() == fake
    monkeypatch.setenv("ESBUILD_BINARY_PATH", str(tmp_path / "missing"))
    with pytest.raises(BundleError, match="is not an executable file"):
        find_esbuild()


def test_project_binary_comes_before_path(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("ESBUILD_BINARY_PATH", raising=False)
    monkeypatch.setenv("PATH", os.defpath)
    assert find_esbuild() == Path(__file__).resolve().parent.parent / "node_modules" / ".bin" / "esbuild"


def fake_binary(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("#!/bin/sh\necho 0.28.2\n")
    path.chmod(0o755)
    return path


@pytest.fixture
def installed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Lookup as an installed wheel does it, with the packaged binary at the returned path (absent at first)."""
    monkeypatch.delenv("ESBUILD_BINARY_PATH", raising=False)
    monkeypatch.setattr(bundle, "INSTALLED", True)
    packaged = tmp_path / "site-packages" / "generator" / "_bin" / "esbuild"
    monkeypatch.setattr(bundle, "PACKAGED_ESBUILD", packaged)
    monkeypatch.setenv("PATH", str(tmp_path / "empty-bin"))
    return packaged


def test_installed_lookup_order_packaged_then_node_modules_upwards_then_path(
    installed: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    project = tmp_path / "project"
    nested = project / "app" / "templates"
    nested.mkdir(parents=True)
    monkeypatch.chdir(nested)
    assert find_esbuild() is None
    on_path = fake_binary(tmp_path / "bin" / "esbuild")
    monkeypatch.setenv("PATH", str(on_path.parent))
    assert find_esbuild() == on_path
    in_parent = fake_binary(project / "node_modules" / ".bin" / "esbuild")
    assert find_esbuild() == in_parent
    nearest = fake_binary(project / "app" / "node_modules" / ".bin" / "esbuild")
    assert find_esbuild() == nearest
    assert find_esbuild(start=project) == in_parent
    packaged = fake_binary(installed)
    assert find_esbuild() == packaged
    explicit = fake_binary(tmp_path / "explicit" / "esbuild")
    monkeypatch.setenv("ESBUILD_BINARY_PATH", str(explicit))
    assert find_esbuild() == explicit


def test_without_any_esbuild_build_says_what_to_do_and_writes_nothing(
    installed: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    out = tmp_path / "out"
    assert main(["build", "--config", str(CONFIG), "--out", str(out)]) == 1
    assert capsys.readouterr().err == f"error: {NO_ESBUILD}\n"
    assert "npm install --save-exact esbuild@0.28.2" in NO_ESBUILD and "--bundler esbuild-py" in NO_ESBUILD
    assert not out.exists()
    with pytest.raises(BundleError, match=r"^no esbuild binary found"):
        generator.build(CONFIG, out)
    assert not out.exists()
    # The fallback only when asked for.
    assert main(["build", "--config", str(CONFIG), "--out", str(out), "--bundler", "esbuild-py"]) == 0
    assert "bundled with the esbuild-py fallback" in capsys.readouterr().err


def test_another_esbuild_version_is_used_with_a_warning(
    installed: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    checkout_binary = Path(__file__).resolve().parent.parent / "node_modules" / ".bin" / "esbuild"
    wrapper = tmp_path / "bin" / "esbuild"
    wrapper.parent.mkdir()
    wrapper.write_text(f'#!/bin/sh\nif [ "$1" = --version ]; then echo 0.99.0; else exec {checkout_binary} "$@"; fi\n')
    wrapper.chmod(0o755)
    monkeypatch.setenv("PATH", str(wrapper.parent))
    monkeypatch.chdir(tmp_path)
    manifest = generator.build(CONFIG, tmp_path / "out")
    assert manifest["esbuild_version"] == "esbuild 0.99.0"
    assert manifest["warnings"] == [
        "bundled with esbuild 0.99.0, not the pinned 0.28.2: the output may differ from the tested one; "
        "install esbuild@0.28.2 or set ESBUILD_BINARY_PATH to it"
    ]


def test_the_pinned_version_is_package_json_s() -> None:
    package = json.loads((Path(__file__).parent.parent / "package.json").read_text())
    assert package["dependencies"]["esbuild"] == PINNED_ESBUILD_VERSION
