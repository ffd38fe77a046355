"""Command-line arguments checked before a command starts: each problem is one line naming the argument and the fix."""

from __future__ import annotations

import errno
import os
import socket
from pathlib import Path

from generator.errors import GeneratorError


class ArgumentProblem(GeneratorError):
    """A path, port or file given on the command line cannot be used."""


def output_folder(flag: str, path: Path) -> None:
    """A folder to write into: existing and writable, or creatable."""
    if _is_file(path):
        raise ArgumentProblem(f"{flag} {path} is a file, not a folder; pass a folder (it is created if missing)")
    existing = _nearest_existing(path)
    if not existing.is_dir():
        raise ArgumentProblem(f"{flag} {path}: {existing} is a file, so no folder can be made there; pass another path")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise ArgumentProblem(f"{flag} {path}: no permission to write in {existing}; pass a folder you can write to")


def output_file(flag: str, path: Path) -> None:
    """A file to (re)write: not a folder, in an existing folder that can be written to."""
    if str(path).endswith(("/", os.sep)) or _is_dir(path):
        raise ArgumentProblem(f"{flag} {path} is a folder; pass a file path, e.g. {path / 'name'}")
    parent = path.parent
    if _is_file(parent):
        raise ArgumentProblem(f"{flag} {path}: {parent} is a file, not a folder; pass a path in an existing folder")
    if not _is_dir(parent):
        raise ArgumentProblem(f"{flag} {path}: the folder {parent} does not exist; create it or pass another path")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise ArgumentProblem(f"{flag} {path}: no permission to write in {parent}; pass a path you can write to")


def free_port(host: str, port: int) -> None:
    """The address can be listened on now (port 0: any free port)."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except (socket.gaierror, UnicodeError):
        raise ArgumentProblem(f"--host {host} is not an address of this machine; pass e.g. 127.0.0.1") from None
    family, kind, protocol, _, address = infos[0]
    with socket.socket(family, kind, protocol) as probe:
        # As the servers do, so a port left in TIME_WAIT by a previous run does not count as busy.
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(address)
        except OSError as error:
            if error.errno == errno.EADDRINUSE:
                raise ArgumentProblem(
                    f"--port {port} is already in use on {host}; stop what uses it or pass another --port"
                ) from None
            if error.errno == errno.EACCES:
                raise ArgumentProblem(
                    f"--port {port}: no permission to listen on it (ports below 1024 need root); pass another --port"
                ) from None
            raise ArgumentProblem(
                f"--host {host} --port {port}: cannot listen there ({error.strerror}); pass another address"
            ) from None


def _nearest_existing(path: Path) -> Path:
    for candidate in (path, *path.absolute().parents):
        if _exists(candidate):
            return candidate
    return Path(path.absolute().anchor)


def _exists(path: Path) -> bool:
    try:
        return path.exists()
    except OSError:
        return False


def _is_file(path: Path) -> bool:
    try:
        return path.is_file()
    except OSError:
        return False


def _is_dir(path: Path) -> bool:
    try:
        return path.is_dir()
    except OSError:
        return False
