"""How this project starts Chromium: Debian's build, headless, with nothing that reaches the network."""

from __future__ import annotations

import shutil

# Without the background-networking switches Chromium keeps trying to reach Google's services.
CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def chromium_executable() -> str:
    """Debian's chromium; Playwright's own browser download is not possible here."""
    return shutil.which("chromium") or "/usr/bin/chromium"
