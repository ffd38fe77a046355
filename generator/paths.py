"""Where the project's own files live: beside the package in a checkout, inside it in a wheel."""

from __future__ import annotations

from pathlib import Path

PACKAGE_DIR = Path(__file__).resolve().parent
PROJECT_ROOT = PACKAGE_DIR.parent
_ASSETS = PACKAGE_DIR / "_assets"
_ASSET_ROOT = _ASSETS if (_ASSETS / "templates").is_dir() else PROJECT_ROOT

TEMPLATES_DIR = _ASSET_ROOT / "templates"
STATIC_DIR = _ASSET_ROOT / "static"
NODE_MODULES = PROJECT_ROOT / "node_modules"
