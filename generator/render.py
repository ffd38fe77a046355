"""Render the config-dependent JavaScript from templates/ and gather it with static/."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jinja2

from generator import guide_events
from generator.compiler import compile_config
from generator.config import Config
from generator.errors import RenderError
from generator.paths import STATIC_DIR, TEMPLATES_DIR

ENTRY_MODULE = "main.js"
TEMPLATE_SUFFIX = ".js.jinja"
TEMPLATE_FILTERS: dict[str, Callable[..., Any]] = {}


@dataclass(frozen=True)
class RenderedModule:
    """One JavaScript module in the render directory, and the project file it came from."""

    name: str
    origin: str


def make_environment() -> jinja2.Environment:
    """The one Jinja environment: strict about undefined names, no HTML escaping (the output is JS)."""
    environment = jinja2.Environment(
        loader=jinja2.FileSystemLoader(TEMPLATES_DIR),
        undefined=jinja2.StrictUndefined,
        autoescape=False,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )
    environment.filters.update(TEMPLATE_FILTERS)
    return environment


CONFIG_TEMPLATE = "config.js.jinja"


def runtime_settings(config: Config) -> dict[str, Any]:
    """The config values the browser needs; they reach JavaScript only through config.js.jinja."""
    return {
        "agentUrl": config.pendo.agent_url,
        "agentNonce": config.pendo.nonce if config.pendo.nonce != "from_script" else None,
        "globalKey": config.source.resolved_global_key,
        "agentOptions": config.pendo.options.for_agent(),
        "consentCategories": config.consent.categories,
        **guide_events.runtime_settings(config),
    }


def _render_order(template_path: Path) -> tuple[bool, str]:
    # config.js renders last: the other templates add to the literal table it writes out.
    return template_path.name == CONFIG_TEMPLATE, template_path.name


def render_modules(config: Config, *, module: bool = False) -> dict[str, str]:
    """Render every template to JavaScript text, keyed by output module name.

    With module, for the ES module: its entry exports the destination plugin instead of registering it at the
    client's global, and no module reads that global. Templates render the same otherwise.
    """
    if module and config.source.client != "segment":
        raise RenderError(
            f'[source] client = "{config.source.client}": the ES module is a plugin for Segment\'s analytics.js 2.0, '
            "and this client takes no plugins; build the script (--format script) for it"
        )
    environment = make_environment()
    context = {
        "config": config,
        "runtime": runtime_settings(config),
        "compiled": compile_config(config),
        "module": module,
    }
    rendered: dict[str, str] = {}
    for template_path in sorted(TEMPLATES_DIR.glob(f"*{TEMPLATE_SUFFIX}"), key=_render_order):
        if not guide_events.template_wanted(template_path.name, config):
            continue
        module_name = template_path.name.removesuffix(".jinja")
        try:
            rendered[module_name] = environment.get_template(template_path.name).render(context)
        except jinja2.TemplateError as error:
            raise RenderError(f"templates/{template_path.name}: {error}") from error
    return dict(sorted(rendered.items()))


def render(config: Config, destination: Path, *, module: bool = False) -> list[RenderedModule]:
    """Write the rendered templates (of the ES module with module) and the static modules side by side."""
    destination.mkdir(parents=True, exist_ok=True)
    modules: list[RenderedModule] = []
    for name, text in render_modules(config, module=module).items():
        (destination / name).write_text(text, encoding="utf-8")
        modules.append(RenderedModule(name, f"templates/{name}.jinja"))
    for static_path in sorted(STATIC_DIR.glob("*.js")):
        if (destination / static_path.name).exists():
            raise RenderError(f"static/{static_path.name} has the same name as a rendered template")
        shutil.copyfile(static_path, destination / static_path.name)
        modules.append(RenderedModule(static_path.name, f"static/{static_path.name}"))
    return modules
