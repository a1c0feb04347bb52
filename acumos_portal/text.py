"""Checks on names people choose (usernames, model names): no character that is invisible or changes
how the text around it reads. Control characters (NUL, CR, LF, tab...) break headers, logs and
PostgreSQL (which cannot store NUL); format characters (U+202E RIGHT-TO-LEFT OVERRIDE, U+200B ZERO
WIDTH SPACE, the bidi isolates...) make a name read as another, or hide a difference."""

from __future__ import annotations

import unicodedata

# Cc control, Cf format (bidi overrides and isolates, zero-width characters), Cs lone surrogates
# (JSON can carry them; no database stores them), Zl/Zp line and paragraph separators.
REFUSED_CATEGORIES = {"Cc", "Cf", "Cs", "Zl", "Zp"}
_CONTROL_NAMES = {0: "NULL", 9: "CHARACTER TABULATION", 10: "LINE FEED", 13: "CARRIAGE RETURN", 27: "ESCAPE",
                  127: "DELETE"}


def character_name(char: str) -> str:
    """`U+202E RIGHT-TO-LEFT OVERRIDE`: the code point and its Unicode name (controls have none of their own)."""
    name = unicodedata.name(char, "") or _CONTROL_NAMES.get(ord(char), "a control character")
    return f"U+{ord(char):04X} {name}"


def hidden_character(text: str) -> str | None:
    """The first control, format or separator character in `text`, named as `character_name` does."""
    for char in text:
        if unicodedata.category(char) in REFUSED_CATEGORIES:
            return character_name(char)
    return None


def hidden_character_error(text: str) -> str | None:
    """`contains U+202E RIGHT-TO-LEFT OVERRIDE; control and direction characters are not allowed`, or None."""
    found = hidden_character(text)
    return f"contains {found}; control and direction characters are not allowed" if found else None
