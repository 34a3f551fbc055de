"""The HTMX gallery: Jinja2 templates and static files served by the app.

htmx itself is not vendored: it is served from the installed ``django-js-lib-htmx`` package.
"""

from __future__ import annotations

from importlib.resources import files
from pathlib import Path

TEMPLATES_DIR = Path(__file__).parent / "templates"
STATIC_DIR = Path(__file__).parent / "static"


def htmx_dir() -> Path:
    """Folder holding ``htmx.min.js`` from the installed package (a project dependency)."""
    folder = Path(str(files("js_lib_htmx"))) / "static" / "htmx"
    if not (folder / "htmx.min.js").exists():
        raise FileNotFoundError(f"htmx.min.js not found in {folder}; reinstall django-js-lib-htmx")
    return folder
