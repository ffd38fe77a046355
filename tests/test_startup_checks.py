"""A missing build stops a Flask or Django app at start-up, naming the setting and the folder, not at its first page.

The Django project is the README's settings example, run with `manage.py check` and `collectstatic` in a
subprocess as a user runs them.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from flask import Flask, render_template_string

import generator
from generator.errors import GeneratorError
from generator.jinja import install

CHECKOUT = Path(__file__).resolve().parent.parent
CONFIG = CHECKOUT / "tests" / "configs" / "minimal.toml"

# The README's Django settings example (only the project's own parts added around it).
SETTINGS = """
from pathlib import Path

BASE_DIR = Path(__file__).resolve().parent
SECRET_KEY = "test-only"
DEBUG = False
ALLOWED_HOSTS = ["127.0.0.1"]
ROOT_URLCONF = "urls"
TEMPLATES = [{"BACKEND": "django.template.backends.django.DjangoTemplates", "APP_DIRS": True}]

INSTALLED_APPS = ["django.contrib.staticfiles", "generator.django"]
STATIC_URL = "static/"
STATIC_ROOT = BASE_DIR / "staticfiles"
SEGMENT_PENDO_BUILD = BASE_DIR / "build" / "segment-pendo"
STATICFILES_DIRS = [("segment-pendo", SEGMENT_PENDO_BUILD)]
"""
MANAGE = """
import os, sys
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "settings")
from django.core.management import execute_from_command_line
execute_from_command_line(sys.argv)
"""
TAG = """
import django
django.setup()
from django.template import engines
print(engines["django"].from_string("{% load segment_pendo %}{% segment_pendo_tag %}").render({}))
"""


def test_install_with_a_missing_folder_fails_at_once_naming_it(tmp_path: Path) -> None:
    app = Flask(__name__)
    with pytest.raises(GeneratorError, match=r"generator.jinja.install\(\): .*nothing: no build here; run `segment"):
        install(app.jinja_env, tmp_path / "nothing", prefix="/static/segment-pendo/")
    assert "segment_pendo_tag" not in app.jinja_env.globals


def test_install_with_a_folder_without_a_manifest_fails_at_once(tmp_path: Path) -> None:
    app = Flask(__name__)
    with pytest.raises(GeneratorError, match=f"{tmp_path}: no build here"):
        install(app.jinja_env, tmp_path)


def test_install_with_a_build_serves_the_tag(tmp_path: Path) -> None:
    manifest = generator.build(CONFIG, tmp_path / "sp")
    app = Flask(__name__)
    install(app.jinja_env, tmp_path / "sp", prefix="/static/segment-pendo/")
    with app.app_context():
        rendered = render_template_string("{{ segment_pendo_tag() }}")
    assert f'src="/static/segment-pendo/{manifest["entry"]}"' in rendered


@pytest.fixture
def project(tmp_path: Path) -> Path:
    (tmp_path / "settings.py").write_text(SETTINGS)
    (tmp_path / "urls.py").write_text("urlpatterns: list[object] = []\n")
    (tmp_path / "manage.py").write_text(MANAGE)
    (tmp_path / "tag.py").write_text(TAG)
    return tmp_path


def manage(project: Path, *argv: str) -> subprocess.CompletedProcess[str]:
    env: dict[str, Any] = {**os.environ, "PYTHONPATH": f"{project}{os.pathsep}{CHECKOUT}"}
    env["DJANGO_SETTINGS_MODULE"] = "settings"
    return subprocess.run(
        [sys.executable, *argv], cwd=project, env=env, capture_output=True, text=True, timeout=120, check=False
    )


def test_manage_py_check_names_the_setting_and_the_missing_folder(project: Path) -> None:
    result = manage(project, "manage.py", "check")
    assert result.returncode == 1
    folder = project / "build" / "segment-pendo"
    assert f"SEGMENT_PENDO_BUILD: the build folder {folder} does not exist" in result.stderr
    assert "segment_pendo.E001" in result.stderr
    assert f"segment-pendo build --config pendo.toml --out {folder}" in result.stderr


def test_manage_py_check_names_a_folder_without_a_build(project: Path) -> None:
    (project / "build" / "segment-pendo").mkdir(parents=True)
    result = manage(project, "manage.py", "check")
    assert result.returncode == 1
    assert "segment_pendo.E002" in result.stderr
    assert "has no manifest.json, so it holds no build" in result.stderr


def test_the_readme_settings_pass_the_check_and_collectstatic_serves_the_tagged_file(project: Path) -> None:
    manifest = generator.build(CONFIG, project / "build" / "segment-pendo")
    assert manage(project, "manage.py", "check").returncode == 0
    collected = manage(project, "manage.py", "collectstatic", "--noinput")
    assert collected.returncode == 0, collected.stderr
    served = project / "staticfiles" / "segment-pendo" / manifest["entry"]
    assert served.read_bytes() == (project / "build" / "segment-pendo" / manifest["entry"]).read_bytes()
    tag = manage(project, "tag.py")
    assert tag.returncode == 0, tag.stderr
    assert f'src="/static/segment-pendo/{manifest["entry"]}"' in tag.stdout
