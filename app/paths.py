"""Where the project's non-Python folders live (templates, static assets, migrations)."""

from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parent.parent
TEMPLATES_DIR = PROJECT_ROOT / "templates"
STATIC_DIR = PROJECT_ROOT / "static"
MIGRATIONS_DIR = PROJECT_ROOT / "migrations"
