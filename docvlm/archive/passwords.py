"""Passwords per file for a conversion (``docvlm convert --passwords FILE``).

The file is one JSON object mapping a name to its password::

    {"scans/2019/minutes.pdf": "s3cret", "board.pdf": "other"}

A name matches a source as the run records it (the path as given, ``ARCHIVE!MEMBER`` for
archive members) or, failing that, its file name alone. Sources not named use
``--password`` (or none). JSON because passwords may hold any character, tabs included.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from pathlib import Path

from docvlm.errors import SettingsError

__all__ = ["load_passwords", "password_for"]


def load_passwords(path: str | Path) -> dict[str, str]:
    """The name -> password mapping in ``path``; ``SettingsError`` naming the file and
    what is wrong when it is not a JSON object of strings."""
    try:
        found = json.loads(Path(path).read_text(encoding="utf-8"))
    except OSError as error:
        raise SettingsError(f"--passwords {path}: cannot read ({error.strerror})") from None
    except (ValueError, UnicodeDecodeError) as error:
        raise SettingsError(f"--passwords {path}: not JSON ({error})") from None
    if not isinstance(found, dict):
        raise SettingsError(f"--passwords {path}: expected a JSON object of name: password")
    for name, password in found.items():
        if not isinstance(password, str):
            raise SettingsError(f"--passwords {path}: the password of {name!r} is not a string")
    return dict(found)


def password_for(name: str, passwords: Mapping[str, str], default: str | None) -> str | None:
    """The password of the source recorded as ``name``: by that name, by its file name,
    else ``default``."""
    if name in passwords:
        return passwords[name]
    base = re.split(r"[/\\!]", name)[-1]
    return passwords.get(base, default)
