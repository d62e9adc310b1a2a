"""The first-run token: while no account exists, creating the admin needs this secret.

It is written into the data folder and printed in the server log (as Jupyter prints its token
URL), so only someone who can read the log of this install can claim it.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

from app.config import Settings
from app.security import new_token, tokens_equal


def _path(settings: Settings) -> Path:
    return settings.data_path / "setup_token"


def ensure_setup_token(settings: Settings) -> str:
    """The current setup token, created on first call."""
    path = _path(settings)
    if not path.exists():
        settings.data_path.mkdir(parents=True, exist_ok=True)
        draft = path.with_name(f".setup_token.{os.getpid()}")
        draft.write_text(new_token())
        draft.chmod(0o600)
        # link() fails when the file exists: web workers starting together agree on one token.
        with contextlib.suppress(FileExistsError):
            os.link(draft, path)
        draft.unlink()
    return path.read_text().strip()


def setup_token_matches(settings: Settings, given: str) -> bool:
    path = _path(settings)
    return bool(given) and path.exists() and tokens_equal(given, path.read_text().strip())


def discard_setup_token(settings: Settings) -> None:
    _path(settings).unlink(missing_ok=True)
