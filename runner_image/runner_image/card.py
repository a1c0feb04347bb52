"""`pack --card FILE`: a model card for metadata.json's `modelCard`, read from a file its authors keep beside the
model. Either JSON (the card as it is), or Markdown with YAML front matter, the form of a Hugging Face model card:

    ---
    task: classification
    hyperparameters: {n_estimators: 10}
    explainability: {methods: [feature_importance], global: true}
    evaluation:
      - {metric: accuracy, value: 0.96, dataset: iris, 30 % held out}
    ---
    # Iris classifier
    ...
    ## Intended use
    Teaching.
    ## Limitations
    Three species only.

The front matter gives the card's fields (snake_case names are taken too: intended_use). Hugging Face's
`pipeline_tag` gives the task where it names one of the portal's (tabular-classification: classification);
their other keys (license, tags, datasets...) are not a card's and are left out, and `pack` says which. The
Markdown body gives `intendedUse` and `limitations` from sections of those names when the front matter does
not, and the rest of it is the card's `details`.

What a card may hold is the portal's rule, checked once, at upload (a wrong card is refused naming its field):
this module only reads the file. PyYAML reads the front matter; it is needed only here, on the author's machine
(`pip install acumos-runner[card]`), never in a model image."""

from __future__ import annotations

import json
import re
from pathlib import Path

CARD_FIELDS = ("task", "hyperparameters", "explainability", "evaluation", "intendedUse", "limitations", "details")
ALIASES = {"intended_use": "intendedUse", "intended-use": "intendedUse"}
# Hugging Face's pipeline tags that name one of the portal's tasks.
PIPELINE_TASKS = {"tabular-classification": "classification", "tabular-regression": "regression",
                  "time-series-forecasting": "forecasting", "text-classification": "text_classification",
                  "text-generation": "text_generation", "image-classification": "image_classification",
                  "object-detection": "object_detection"}
SECTIONS = {"intended use": "intendedUse", "intended uses": "intendedUse", "limitations": "limitations"}
_FENCE = re.compile(r"\A---[ \t]*\r?\n(.*?)^---[ \t]*\r?$\n?", re.DOTALL | re.MULTILINE)
_HEADING = re.compile(r"^(#{1,6})[ \t]+(.+?)[ \t#]*$", re.MULTILINE)


class CardError(ValueError):
    """The file cannot be read as a card: the message says where and what is wrong."""


def read_card(path: Path) -> tuple[dict, list[str]]:
    """(the card for metadata.json, the keys of the file left out because a card has no such field)."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise CardError(f"--card {path}: {exc}") from None
    if Path(path).suffix.lower() == ".json":
        try:
            card = json.loads(text)
        except ValueError as exc:
            raise CardError(f"--card {path}: not JSON: {exc}") from None
        if not isinstance(card, dict):
            raise CardError(f"--card {path}: a card is a JSON object of {', '.join(CARD_FIELDS)}")
        return card, []
    return _from_markdown(text, path)


def _from_markdown(text: str, path: Path) -> tuple[dict, list[str]]:
    fence = _FENCE.match(text)
    if text.startswith("---") and fence is None:
        raise CardError(f"--card {path}: its front matter starts with --- on the first line but no line of --- "
                        "ends it")
    front = _front_matter(fence.group(1), path) if fence else {}
    card, left_out = {}, []
    for key, value in front.items():
        name = ALIASES.get(key, key)
        if name in CARD_FIELDS:
            card[name] = value
        elif key == "pipeline_tag" and value in PIPELINE_TASKS:
            card.setdefault("task", PIPELINE_TASKS[value])
        else:
            left_out.append(key)
    body = text[fence.end():] if fence else text
    sections, rest = _sections(body)
    for name, said in sections.items():
        card.setdefault(name, said)
    if rest and "details" not in card:
        card["details"] = rest
    return card, left_out


def _front_matter(yaml_text: str, path: Path) -> dict:
    try:
        import yaml  # only pack --card needs it: acumos-runner[card]
    except ImportError:
        raise CardError("reading a Markdown card's front matter needs PyYAML: pip install 'acumos-runner[card]' "
                        "(or give the card as a .json file)") from None
    try:
        front = yaml.safe_load(yaml_text)  # safe_load: a card is data, never objects to build
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" (line {mark.line + 2}, column {mark.column + 1})" if mark is not None else ""
        raise CardError(f"--card {path}: its front matter is not YAML{where}: "
                        f"{getattr(exc, 'problem', None) or exc}") from None
    if front is None:
        return {}
    if not isinstance(front, dict):
        raise CardError(f"--card {path}: its front matter must be a mapping of fields (task: ..., evaluation: ...)")
    return {str(key): value for key, value in front.items()}


def _sections(body: str) -> tuple[dict[str, str], str]:
    """The texts of the sections named "Intended use" and "Limitations" (to the next heading of the same or a
    higher level), and the body without them."""
    headings = list(_HEADING.finditer(body))
    found, cut = {}, []
    for index, heading in enumerate(headings):
        name = SECTIONS.get(heading.group(2).strip().lower())
        if name is None or name in found:
            continue
        level = len(heading.group(1))
        end = next((later.start() for later in headings[index + 1:] if len(later.group(1)) <= level), len(body))
        found[name] = body[heading.end():end].strip()
        cut.append((heading.start(), end))
    rest = body
    for start, end in reversed(cut):
        rest = rest[:start] + rest[end:]
    return {name: said for name, said in found.items() if said}, re.sub(r"\n{3,}", "\n\n", rest).strip()
