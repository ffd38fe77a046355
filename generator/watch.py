"""What a rebuild on change watches: the config file and the package's templates and static modules."""

from __future__ import annotations

from pathlib import Path

from generator.paths import STATIC_DIR, TEMPLATES_DIR

POLL_SECONDS = 0.3


def source_fingerprint(config_path: Path) -> tuple[int, ...]:
    """Modification times of everything a build reads; a changed tuple means build again (a missing file counts too)."""
    watched = [config_path, *sorted(TEMPLATES_DIR.iterdir()), *sorted(STATIC_DIR.iterdir())]
    return tuple(value for path in watched for value in _stamp(path))


def _stamp(path: Path) -> tuple[int, int]:
    try:
        stat = path.stat()
    except OSError:
        return (0, -1)
    # The size too: an editor can save twice within one timestamp tick.
    return (stat.st_mtime_ns, stat.st_size)
