"""Real Flask and Django apps that put the built script in a page with the tag helpers, under a nonce-only CSP."""

from __future__ import annotations

import secrets
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from flask import Flask, Response, g, render_template_string, send_from_directory
from werkzeug.serving import make_server

from generator.jinja import install
from generator.paths import PROJECT_ROOT

SNIPPET_DIR = PROJECT_ROOT / "site_demo"
SCRIPT_PREFIX = "/static/segment-pendo/"
WRITE_KEY = "wk_test_1234"


def content_security_policy(nonce: str) -> str:
    """Scripts only by this response's nonce, plus Segment's CDN (analytics.js loads its own chunks)."""
    return (
        f"default-src 'self'; script-src 'nonce-{nonce}' https://cdn.segment.com; "
        "connect-src 'self' https://cdn.segment.com https://api.segment.io https://app.pendo.io; "
        "img-src 'self' data: https://app.pendo.io; style-src 'self' 'unsafe-inline'; object-src 'none'; "
        "base-uri 'none'"
    )


FLASK_PAGE = """<!doctype html>
<html><head><title>Flask shop</title>
<script nonce="{{ nonce }}" src="/static/segment-snippet.js" data-write-key="{{ write_key }}"></script>
{{ segment_pendo_tag(nonce=nonce) }}
<script nonce="{{ nonce }}">analytics.identify({{ user|tojson }}, {plan: 'pro'});</script>
</head><body><h1>Flask shop</h1></body></html>
"""


def flask_app(build_dir: Path, user: str) -> Flask:
    """A Flask app as a user would write it: a nonce per request, the CSP header, and the Jinja global."""
    app = Flask(__name__, static_folder=None)
    install(app.jinja_env, build_dir, prefix=SCRIPT_PREFIX)

    @app.before_request
    def make_nonce() -> None:
        g.csp_nonce = secrets.token_urlsafe(16)

    @app.after_request
    def add_policy(response: Response) -> Response:
        response.headers["Content-Security-Policy"] = content_security_policy(g.csp_nonce)
        return response

    @app.get("/")
    def home() -> str:
        return render_template_string(FLASK_PAGE, nonce=g.csp_nonce, user=user, write_key=WRITE_KEY)

    @app.get(SCRIPT_PREFIX + "<path:name>")
    def script(name: str) -> Response:
        return send_from_directory(build_dir, name)

    @app.get("/static/segment-snippet.js")
    def snippet() -> Response:
        return send_from_directory(SNIPPET_DIR, "segment-snippet.js")

    return app


DJANGO_PAGE = """{% load segment_pendo %}<!doctype html>
<html><head><title>Django shop</title>
<script nonce="{{ request.csp_nonce }}" src="/static/segment-snippet.js" data-write-key="{{ write_key }}"></script>
{% segment_pendo_tag %}
<script nonce="{{ request.csp_nonce }}">analytics.identify("{{ user|escapejs }}", {plan: 'pro'});</script>
</head><body><h1>Django shop</h1></body></html>
"""


def csp_nonce_middleware(get_response: Callable[[Any], Any]) -> Callable[[Any], Any]:
    """What django-csp (or Django's own CSP support) does: request.csp_nonce, and the header with it."""

    def middleware(request: Any) -> Any:
        request.csp_nonce = secrets.token_urlsafe(16)
        response = get_response(request)
        response["Content-Security-Policy"] = content_security_policy(request.csp_nonce)
        return response

    return middleware


def django_home(request: Any) -> Any:
    from django.conf import settings
    from django.http import HttpResponse
    from django.template import engines

    page = engines["django"].from_string(DJANGO_PAGE)
    return HttpResponse(page.render({"user": settings.SHOP_USER, "write_key": WRITE_KEY}, request))


def django_script(request: Any, name: str) -> Any:
    from django.conf import settings
    from django.views.static import serve

    return serve(request, name, document_root=settings.SEGMENT_PENDO_BUILD)


def django_snippet(request: Any) -> Any:
    from django.views.static import serve

    return serve(request, "segment-snippet.js", document_root=str(SNIPPET_DIR))


def django_app(build_dir: Path, user: str) -> Any:
    """A Django project with the segment_pendo app, configured in this process (once)."""
    import django
    from django.conf import settings
    from django.core.wsgi import get_wsgi_application

    if not settings.configured:
        settings.configure(
            DEBUG=False,
            SECRET_KEY="test-only",
            ALLOWED_HOSTS=["127.0.0.1"],
            ROOT_URLCONF="tests.support.django_urls",
            INSTALLED_APPS=["generator.django"],
            MIDDLEWARE=["tests.support.page_sites.csp_nonce_middleware"],
            TEMPLATES=[
                {
                    "BACKEND": "django.template.backends.django.DjangoTemplates",
                    "APP_DIRS": True,
                    # As in `django-admin startproject`: templates see the request (and so its csp_nonce).
                    "OPTIONS": {"context_processors": ["django.template.context_processors.request"]},
                }
            ],
            SEGMENT_PENDO_BUILD=str(build_dir),
            SEGMENT_PENDO_PREFIX=SCRIPT_PREFIX,
            SHOP_USER=user,
            USE_TZ=True,
        )
        django.setup()
    return get_wsgi_application()


@contextmanager
def serving(app: Any) -> Iterator[str]:
    """Serve a WSGI app on loopback in a thread; yields its origin."""
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        server.server_close()
