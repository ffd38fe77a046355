"""The Django test site's URLs."""

from __future__ import annotations

from django.urls import path, re_path

from tests.support.page_sites import django_home, django_script, django_snippet

urlpatterns = [
    path("", django_home),
    re_path(r"^static/segment-pendo/(?P<name>[^/]+)$", django_script),
    path("static/segment-snippet.js", django_snippet),
]
