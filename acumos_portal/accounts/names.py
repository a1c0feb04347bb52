"""Usernames: what makes two of them the same name to a reader.

Django already stores usernames NFKC-normalised ("ａｄｍｉｎ" is "admin") and refuses one that differs
from another only in case. This adds the Unicode confusables of UTS #39: "аdmin" with a Cyrillic а
reads as "admin", "0wner" as "owner". `username_key` is the skeleton of the name case-folded (each
character replaced by the prototype it is confusable with, from the confusables.txt data that
confusable-homoglyphs ships); two usernames with one key are one name, and User.username_key is
unique. Folding case first keeps "ADMIN" one with "admin", at the price of "Iris" and "lris" (a
capital I and a small L) being two names."""

from __future__ import annotations

import unicodedata
from functools import cache

from confusable_homoglyphs.confusables import confusables_data


@cache
def _prototype(char: str) -> str:
    """What `char` reads as. The package's data lists, for a character confusables.txt maps, its one
    prototype, and for a prototype every character mapped to it; a pair that list only each other is
    given its smaller member, so that both read as one."""
    homoglyphs = confusables_data.get(char)
    if not homoglyphs or len(homoglyphs) != 1:
        return char  # not confusable, or a prototype of several
    target = homoglyphs[0]["c"]
    back = confusables_data.get(target) or []
    if len(back) == 1 and back[0]["c"] == char:
        return min(char, target)
    return target if any(entry["c"] == char for entry in back) else char


def skeleton(text: str) -> str:
    """UTS #39's skeleton: NFD, each character to its prototype, NFD again."""
    mapped = "".join(_prototype(char) for char in unicodedata.normalize("NFD", text))
    return unicodedata.normalize("NFD", mapped)


def username_key(username: str) -> str:
    folded = skeleton(unicodedata.normalize("NFKC", username).casefold())
    return skeleton(folded.casefold())  # again: some prototypes are capitals ("0" reads as "O")
