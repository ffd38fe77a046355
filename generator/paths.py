"""Where the project's own files live: beside the package in a checkout, inside it in a wheel."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

PACKAGE_DIR = Path(__file__).resolve().parent
PROJECT_ROOT = PACKAGE_DIR.parent
_ASSETS = PACKAGE_DIR / "_assets"
# A wheel carries its files under generator/_assets (see pyproject.toml and hatch_build.py); a checkout
# (or an editable install) has them beside the package.
INSTALLED = (_ASSETS / "templates").is_dir()
_ASSET_ROOT = _ASSETS if INSTALLED else PROJECT_ROOT

TEMPLATES_DIR = _ASSET_ROOT / "templates"
STATIC_DIR = _ASSET_ROOT / "static"
SITE_DIR = _ASSET_ROOT / "site_demo"
EXAMPLE_CONFIGS_DIR = _ASSETS / "examples" if INSTALLED else PROJECT_ROOT / "tests" / "configs"
DEMO_CONFIG = SITE_DIR / "demo.toml"
# The checkout's npm packages (absent from an installed wheel).
NODE_MODULES = PROJECT_ROOT / "node_modules"
_CHECKOUT_ANALYTICS_NEXT = NODE_MODULES / "@segment" / "analytics-next" / "dist" / "umd"
ANALYTICS_NEXT_DIR = _ASSETS / "vendor" / "analytics-next" if INSTALLED else _CHECKOUT_ANALYTICS_NEXT
EXECUTABLE_SUFFIX = ".exe" if os.name == "nt" else ""
PACKAGED_ESBUILD = PACKAGE_DIR / "_bin" / f"esbuild{EXECUTABLE_SUFFIX}"


def node_modules_dirs(start: Path | None = None) -> Iterator[Path]:
    """node_modules of the start folder (default: the current one) and each of its parents, nearest first."""
    folder = (start or Path.cwd()).resolve()
    for candidate in (folder, *folder.parents):
        path = candidate / "node_modules"
        if path.is_dir():
            yield path
