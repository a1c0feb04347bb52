"""A revision's model card: what it is for and how it was made, declared by its owner (the MLaaS paper's
declarative description; Hugging Face's and Google's model cards; SPDX 3's AI fields). It comes in the
bundle, as the `modelCard` object of metadata.json (the Acumos metadata schema allows fields of one's own;
`python -m runner_image pack --card MODEL_CARD.md` writes it from a Markdown file's YAML front matter), and
its owners change it on the model page or over the API.

What a card says is self-reported, and says so: evaluation results are `"verified": false` whatever the
uploader writes. What a version needs to run is not in the card: it is measured (Revision.resources). Its
inputs, outputs and framework are not either: they are read from its proto and metadata (`described`).

`clean` is the one check of a card, for every way in: it answers the card as stored, or raises CardInvalid
naming the field, what is wrong and what is allowed."""

from __future__ import annotations

import math

TASKS = ("classification", "regression", "clustering", "ranking", "forecasting", "anomaly_detection",
         "recommendation", "text_classification", "text_generation", "image_classification", "object_detection",
         "other")
EXPLANATIONS = ("feature_importance", "shap", "lime", "counterfactual", "attention", "rules", "none")
FIELDS = ("task", "hyperparameters", "explainability", "evaluation", "intendedUse", "limitations", "details")
MAX_TEXT = 4000
MAX_NAME = 100
MAX_ENTRIES = 100


class CardInvalid(ValueError):
    def __init__(self, field: str, message: str):
        super().__init__(f"modelCard.{field}: {message}")
        self.field = field
        self.message = f"modelCard.{field}: {message}"


def clean(card) -> dict:
    """The card as stored ({} for none), or CardInvalid."""
    if card is None:
        return {}
    if not isinstance(card, dict):
        raise CardInvalid("(the card)", "must be an object of " + ", ".join(FIELDS))
    unknown = sorted(set(card) - set(FIELDS))
    if unknown:
        raise CardInvalid(unknown[0][:MAX_NAME], "is not a field of a model card; the fields are " + ", ".join(FIELDS))
    cleaned: dict = {}
    if card.get("task") is not None:
        cleaned["task"] = _choice(card["task"], "task", TASKS)
    if card.get("hyperparameters") is not None:
        cleaned["hyperparameters"] = _hyperparameters(card["hyperparameters"])
    if card.get("explainability") is not None:
        cleaned["explainability"] = _explainability(card["explainability"])
    if card.get("evaluation") is not None:
        cleaned["evaluation"] = _evaluation(card["evaluation"])
    for name in ("intendedUse", "limitations", "details"):
        if card.get(name) not in (None, ""):
            cleaned[name] = _text(card[name], name)
    return cleaned


def _choice(value, field: str, allowed: tuple[str, ...]) -> str:
    if value not in allowed:
        raise CardInvalid(field, f"{str(value)[:40]!r} is not one of {', '.join(allowed)}")
    return value


def _text(value, field: str, limit: int = MAX_TEXT) -> str:
    if not isinstance(value, str):
        raise CardInvalid(field, "must be text")
    if len(value) > limit:
        raise CardInvalid(field, f"is {len(value)} characters; at most {limit}")
    return value.strip()


def _number(value, field: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise CardInvalid(field, "must be a finite number")
    return value


def _hyperparameters(value) -> dict:
    if not isinstance(value, dict):
        raise CardInvalid("hyperparameters", "must be an object of name: value")
    if len(value) > MAX_ENTRIES:
        raise CardInvalid("hyperparameters", f"has {len(value)} entries; at most {MAX_ENTRIES}")
    cleaned = {}
    for name, setting in value.items():
        if len(name) > MAX_NAME:
            raise CardInvalid("hyperparameters", f"a name is {len(name)} characters; at most {MAX_NAME}")
        if setting is not None and not isinstance(setting, str | int | float | bool):
            raise CardInvalid(f"hyperparameters.{name}", "must be a number, text, true/false or null")
        if isinstance(setting, float) and not math.isfinite(setting):
            raise CardInvalid(f"hyperparameters.{name}", "must be a finite number")
        cleaned[name] = _text(setting, f"hyperparameters.{name}", MAX_NAME * 2) if isinstance(setting, str) else setting
    return cleaned


def _explainability(value) -> dict:
    """{"methods": [...], "local": bool, "global": bool}: how its answers can be explained."""
    if not isinstance(value, dict) or set(value) - {"methods", "local", "global"}:
        raise CardInvalid("explainability", 'must be an object {"methods": [...], "local": true/false, '
                                            '"global": true/false}')
    methods = value.get("methods", [])
    if not isinstance(methods, list) or len(methods) > len(EXPLANATIONS):
        raise CardInvalid("explainability.methods", "must be a list of " + ", ".join(EXPLANATIONS))
    cleaned = {"methods": sorted({_choice(m, "explainability.methods", EXPLANATIONS) for m in methods})}
    for scope in ("local", "global"):
        if not isinstance(value.get(scope, False), bool):
            raise CardInvalid(f"explainability.{scope}", "must be true or false")
        cleaned[scope] = value.get(scope, False)
    return cleaned


def _evaluation(value) -> list[dict]:
    """[{"metric", "value", "dataset"?}]: self-reported, so never verified here."""
    if not isinstance(value, list) or len(value) > MAX_ENTRIES:
        raise CardInvalid("evaluation", f'must be a list of at most {MAX_ENTRIES} {{"metric", "value", "dataset"}}')
    cleaned = []
    for i, entry in enumerate(value):
        where = f"evaluation[{i}]"
        if not isinstance(entry, dict) or set(entry) - {"metric", "value", "dataset", "verified"}:
            raise CardInvalid(where, 'must be an object {"metric", "value", "dataset"}')
        if not entry.get("metric"):
            raise CardInvalid(f"{where}.metric", "is missing (e.g. accuracy, f1, rmse)")
        cleaned.append({"metric": _text(entry["metric"], f"{where}.metric", MAX_NAME),
                        "value": _number(entry.get("value"), f"{where}.value"),
                        "dataset": _text(entry.get("dataset") or "", f"{where}.dataset", MAX_NAME * 2),
                        "verified": False})
    return cleaned


def described(revision) -> dict:
    """What a revision says of itself, for people, the API and peers: its card, with what the portal read from
    its files (framework; methods with their input and output fields) and what it measured."""
    runtime = revision.metadata.get("runtime") if isinstance(revision.metadata, dict) else None
    runtime = runtime if isinstance(runtime, dict) else {}
    return {"card": revision.card, "framework": runtime.get("toolkit") or revision.solution.toolkit,
            "framework_version": str(runtime.get("version", "")), "interface": revision.interface,
            "resources": revision.resources}
