"""`manage.py check` (and so `runserver` and every deploy check) finds a missing or unreadable build at start-up.

Without it the first page that renders `{% segment_pendo_tag %}` fails with a server error.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.checks import Error

from generator.tag import MANIFEST_NAME, TagError, script_tag

DEFAULT_BUILD = "segment-pendo"


def check_build(app_configs: Any = None, **kwargs: Any) -> list[Error]:
    """One error naming SEGMENT_PENDO_BUILD and its folder when the folder has no usable build."""
    configured = getattr(settings, "SEGMENT_PENDO_BUILD", None)
    folder = Path(configured if configured is not None else DEFAULT_BUILD)
    setting = "SEGMENT_PENDO_BUILD"
    if configured is None:
        setting += f" (not set, so {DEFAULT_BUILD!r})"
    build_command = f"run `segment-pendo build --config pendo.toml --out {folder}` before starting the app"
    if not folder.is_dir():
        return [
            Error(
                f"{setting}: the build folder {folder.resolve()} does not exist",
                hint=f"{build_command}, or point SEGMENT_PENDO_BUILD at the folder `build --out` wrote",
                id="segment_pendo.E001",
            )
        ]
    if not (folder / MANIFEST_NAME).is_file():
        return [
            Error(
                f"{setting}: the folder {folder.resolve()} has no {MANIFEST_NAME}, so it holds no build",
                hint=build_command,
                id="segment_pendo.E002",
            )
        ]
    try:
        script_tag(folder)
    except TagError as error:
        return [Error(f"{setting}: {error}", hint=build_command, id="segment_pendo.E003")]
    return []
