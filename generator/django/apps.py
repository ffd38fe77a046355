"""The Django app that provides the `segment_pendo` template tag library."""

from __future__ import annotations

from django.apps import AppConfig
from django.core import checks

from generator.django.checks import check_build


class SegmentPendoConfig(AppConfig):  # type: ignore[misc]
    """Named after the package; labelled segment_pendo so it clashes with no other app."""

    name = "generator.django"
    label = "segment_pendo"
    verbose_name = "segment-pendo"

    def ready(self) -> None:
        """Register the start-up check of the build folder (SEGMENT_PENDO_BUILD)."""
        checks.register(check_build)
