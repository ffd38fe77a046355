"""Writing output files: all or nothing, private when they hold a secret, and a clear error when impossible."""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

from generator.errors import GeneratorError

PRIVATE_MODE = 0o600


class OutputError(GeneratorError):
    """An output file or folder cannot be written; the message names it and the reason."""


def write_files(files: dict[str, bytes], out_dir: Path, *, last: str | None = None) -> None:
    """Write every file into out_dir, or none: all are written aside first, then each moved into place atomically.

    The file named last is moved last (a manifest, so readers never see it before what it describes).
    """
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise OutputError(f"cannot create the folder {out_dir}: {_reason(error)}") from None
    order = [*sorted(name for name in files if name != last), *([last] if last in files else [])]
    partials = {name: out_dir / f".{name}.partial" for name in order}
    try:
        for name in order:
            partials[name].write_bytes(files[name])
        for name in order:
            os.replace(partials[name], out_dir / name)
    except OSError as error:
        for partial in partials.values():
            with contextlib.suppress(OSError):
                partial.unlink(missing_ok=True)
        raise OutputError(f"cannot write into {out_dir}: {_reason(error)}") from None


def write_file(path: Path, data: bytes, *, private: bool = False) -> None:
    """Replace path atomically; private files (holding a secret) are readable by their owner only (0600)."""
    partial = path.with_name(f".{path.name}.partial")
    mode = PRIVATE_MODE if private else 0o666
    try:
        with contextlib.suppress(FileNotFoundError):
            partial.unlink()
        descriptor = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
        with os.fdopen(descriptor, "wb") as handle:
            handle.write(data)
        if private:
            os.chmod(partial, PRIVATE_MODE)
        os.replace(partial, path)
    except OSError as error:
        with contextlib.suppress(OSError):
            partial.unlink(missing_ok=True)
        raise OutputError(f"cannot write {path}: {_reason(error)}") from None


def _reason(error: OSError) -> str:
    return error.strerror or str(error)
