"""Jinja2 (and so Flask): `{{ segment_pendo_tag(nonce=…) }}` writes the build's <script> tag.

In Flask: `install(app.jinja_env, "segment-pendo/", prefix="/static/segment-pendo/")`, the folder that
`segment-pendo build --out` wrote and the URL it is served under; or add the extension by name
("generator.jinja.SegmentPendoExtension") and set `segment_pendo_build` and `segment_pendo_prefix` on the
environment.
"""

from __future__ import annotations

from pathlib import Path

from jinja2 import Environment
from jinja2.ext import Extension
from markupsafe import Markup

from generator.tag import TagError, script_tag


class SegmentPendoExtension(Extension):
    """Adds the global `segment_pendo_tag(nonce=None, prefix=None)`; settings live on the environment."""

    def __init__(self, environment: Environment) -> None:
        """Register the global and the environment's defaults (build folder "segment-pendo", prefix "/")."""
        super().__init__(environment)
        environment.extend(segment_pendo_build="segment-pendo", segment_pendo_prefix="/")
        environment.globals["segment_pendo_tag"] = self.tag

    def tag(self, nonce: str | None = None, prefix: str | None = None) -> Markup:
        """The <script> tag for the environment's build, with this request's CSP nonce when there is one."""
        environment = self.environment
        build: str | Path = environment.segment_pendo_build  # type: ignore[attr-defined]
        base = prefix if prefix is not None else environment.segment_pendo_prefix  # type: ignore[attr-defined]
        # script_tag escapes every value it writes, so the result is safe markup.
        return Markup(script_tag(build, prefix=base, nonce=nonce))


def install(environment: Environment, build: str | Path, *, prefix: str = "/") -> None:
    """Add the extension to an environment and point it at a build folder served under prefix.

    The build is checked here, at start-up, so a missing folder or manifest stops the app from starting
    (GeneratorError, naming the folder) instead of failing the first page that renders the tag.
    """
    try:
        script_tag(build, prefix=prefix)
    except TagError as error:
        raise TagError(f"generator.jinja.install(): {error}") from None
    environment.add_extension(SegmentPendoExtension)
    environment.segment_pendo_build = build  # type: ignore[attr-defined]
    environment.segment_pendo_prefix = prefix  # type: ignore[attr-defined]
