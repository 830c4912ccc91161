"""Example configs shipped inside the package: ``-c builtin:narw`` works from a wheel.

They are the files in ``pamlive/configs/`` (the repository's top-level ``configs`` is a
link to that folder, so the README's paths and the package hold the same files).
"""

from __future__ import annotations

from pathlib import Path

from pamlive.errors import ConfigError

PREFIX = "builtin:"
CONFIG_DIR = Path(__file__).resolve().parent / "configs"


def config_names() -> list[str]:
    return sorted(p.stem for p in CONFIG_DIR.glob("*.toml"))


def resolve_config(path: str | Path) -> Path:
    """``builtin:NAME`` as the shipped file; any other path as given."""
    text = str(path)
    if not text.startswith(PREFIX):
        return Path(path)
    name = text[len(PREFIX):]
    if name not in config_names():
        raise ConfigError(f"no built-in config '{name}' (have: {', '.join(config_names())})")
    return CONFIG_DIR / f"{name}.toml"
