"""`{% segment_pendo_tag %}`: the build's <script> tag, with the request's CSP nonce."""

from __future__ import annotations

from typing import Any

from django import template
from django.conf import settings
from django.utils.safestring import SafeString, mark_safe

from generator.tag import script_tag

register = template.Library()


@register.simple_tag(takes_context=True)  # type: ignore[untyped-decorator]
def segment_pendo_tag(context: Any, nonce: str | None = None, prefix: str | None = None) -> SafeString:
    """The tag for settings.SEGMENT_PENDO_BUILD under SEGMENT_PENDO_PREFIX; nonce defaults to request.csp_nonce."""
    if nonce is None:
        nonce = getattr(context.get("request"), "csp_nonce", None)
    if prefix is None:
        prefix = getattr(settings, "SEGMENT_PENDO_PREFIX", None) or f"{settings.STATIC_URL or '/static/'}segment-pendo/"
    build = getattr(settings, "SEGMENT_PENDO_BUILD", "segment-pendo")
    # script_tag escapes every value it writes.
    return mark_safe(script_tag(build, prefix=prefix, nonce=str(nonce) if nonce else None))
