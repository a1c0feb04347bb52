"""The model page's forms: ratings, comments, and what owners and co-owners change.

Forms check the shape of the input; whether it may be done is marketplace.services' call, whose
refusals (services.Refused) are put back on the form next to the field they name."""

from __future__ import annotations

import json

from django import forms
from django.utils.text import slugify

from marketplace import cards, services
from marketplace.choices import ModelType
from marketplace.models import Catalog, Revision, Tag

STAR_CHOICES = [(stars, f"{stars} star{'s' if stars > 1 else ''}") for stars in range(1, 6)]
TAG_MAX_LENGTH = Tag._meta.get_field("name").max_length


def add_refusal(form: forms.Form, refused: services.Refused) -> None:
    """A service's refusal, next to the field it is about (or on top of the form)."""
    field = refused.field if refused.field in form.fields else None
    form.add_error(field, refused.message)


class RatingForm(forms.Form):
    stars = forms.TypedChoiceField(
        label="Your rating", choices=STAR_CHOICES, coerce=int, widget=forms.RadioSelect,
        error_messages={"required": "choose 1 to 5 stars", "invalid_choice": "give 1 to 5 stars"})
    review = forms.CharField(
        label="Review", required=False, max_length=4000,
        widget=forms.Textarea(attrs={"rows": 4, "placeholder": "What worked, what did not, what you used it for"}),
        help_text="Optional. Shown with your name under the ratings.")


class CommentForm(forms.Form):
    text = forms.CharField(
        label="Comment", max_length=8192, widget=forms.Textarea(attrs={"rows": 3}),
        error_messages={"required": "write something first"},
        help_text="Plain text. The owner is told about it.")
    parent = forms.IntegerField(required=False, widget=forms.HiddenInput)


class DetailsForm(forms.Form):
    description = forms.CharField(
        label="Description", required=False, max_length=20000,
        widget=forms.Textarea(attrs={"rows": 12, "spellcheck": "true"}),
        help_text="Markdown: headings, lists, links, `code`, fenced code blocks and tables. "
                  "Scripts and raw HTML handlers are removed.")
    tags = forms.CharField(
        label="Tags", required=False, max_length=600,
        help_text=f"Comma-separated, at most {services.MAX_TAGS}; each becomes a lowercase slug "
                  "(\"Computer Vision\" → computer-vision).")
    model_type = forms.ChoiceField(label="Model type", choices=ModelType.choices)

    def clean_tags(self) -> list[str]:
        tags: list[str] = []
        for raw in self.cleaned_data["tags"].split(","):
            if not raw.strip():
                continue
            tag = slugify(raw)
            if not tag:
                raise forms.ValidationError(f"{raw.strip()!r} is not a tag: use letters, digits and hyphens")
            if len(tag) > TAG_MAX_LENGTH:
                raise forms.ValidationError(f"{tag!r} is longer than {TAG_MAX_LENGTH} characters")
            if tag not in tags:
                tags.append(tag)
        if len(tags) > services.MAX_TAGS:
            raise forms.ValidationError(f"at most {services.MAX_TAGS} tags (there are {len(tags)})")
        return tags


class PublishForm(forms.Form):
    revision = forms.ModelChoiceField(
        label="Version", queryset=Revision.objects.none(), empty_label=None,
        help_text="Only a version that finished onboarding can be published.")
    catalog = forms.ModelChoiceField(
        label="Catalog", queryset=Catalog.objects.none(), empty_label=None,
        help_text="Catalogs that need approval send a request to a publisher; the others publish at once.")
    message = forms.CharField(
        label="Message to the publisher", required=False, max_length=2000,
        widget=forms.Textarea(attrs={"rows": 2}), help_text="Optional; read by whoever reviews the request.")

    def __init__(self, *args, revisions, catalogs, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["revision"].queryset = revisions
        self.fields["revision"].label_from_instance = _revision_label
        self.fields["catalog"].queryset = catalogs
        self.fields["catalog"].label_from_instance = _catalog_label

    def freeze_choices(self, revisions: list | None = None) -> None:
        """Read each select's options once (`revisions`: already read by the page). A select asks for
        its choices twice when drawn (the options, and whether the first one is empty)."""
        field = self.fields["revision"]
        field.widget.choices = ([(field.prepare_value(r), _revision_label(r)) for r in revisions]
                                if revisions is not None else list(field.choices))
        self.fields["catalog"].widget.choices = list(self.fields["catalog"].choices)


def _revision_label(revision: Revision) -> str:
    return revision.version if revision.is_ready else f"{revision.version} (still onboarding)"


def _catalog_label(catalog: Catalog) -> str:
    how = "published at once" if catalog.self_publish else "needs a publisher's approval"
    return f"{catalog.name} — {catalog.get_access_display().lower()}, {how}"


class ShareForm(forms.Form):
    username = forms.CharField(
        label="Username", max_length=150, widget=forms.TextInput(attrs={"autocomplete": "off"}),
        help_text="A co-owner sees this model while it is private and manages it like you; only you can delete it.")


class DeleteForm(forms.Form):
    confirm = forms.BooleanField(
        label="Yes, delete this model", error_messages={"required": "tick the box to confirm"},
        help_text="It disappears from every catalog and search; you can restore it from My models.")


class NotificationSettingsForm(forms.Form):
    """A checkbox per kind of notification the user may be told of (selectors.notification_choices);
    one that is always on is shown ticked and cannot be changed."""

    def __init__(self, choices: list, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.choices = choices
        for choice in choices:
            self.fields[choice.kind] = forms.BooleanField(
                label=choice.label, required=False, initial=choice.enabled, disabled=choice.always_on,
                help_text=choice.description)

    def groups(self) -> list[tuple[str, list]]:
        """(group, [(choice, bound field)]) in the settings' order."""
        grouped: dict[str, list] = {}
        for choice in self.choices:
            grouped.setdefault(choice.group, []).append((choice, self[choice.kind]))
        return list(grouped.items())

    def chosen(self) -> dict[str, bool]:
        """What the user may change, as they left it (a checkbox not sent is off)."""
        return {choice.kind: self.cleaned_data[choice.kind] for choice in self.choices if not choice.always_on}


class CardForm(forms.Form):
    """A version's model card on its page: the fields in words, hyperparameters and evaluation as JSON (what
    they are in metadata.json). marketplace.cards.clean judges the card; its refusal goes beside the field."""

    task = forms.ChoiceField(label="Task", required=False, choices=[("", "not said"), *((t, t.replace("_", " "))
                                                                                        for t in cards.TASKS)])
    intended_use = forms.CharField(label="Intended use", required=False, max_length=cards.MAX_TEXT,
                                   widget=forms.Textarea(attrs={"rows": 3}))
    limitations = forms.CharField(label="Limitations", required=False, max_length=cards.MAX_TEXT,
                                  widget=forms.Textarea(attrs={"rows": 3}))
    explains_with = forms.MultipleChoiceField(label="Explains with", required=False,
                                              choices=[(m, m.replace("_", " ")) for m in cards.EXPLANATIONS],
                                              widget=forms.CheckboxSelectMultiple)
    explains_local = forms.BooleanField(label="Explains single answers", required=False)
    explains_global = forms.BooleanField(label="Explains the model as a whole", required=False)
    hyperparameters = forms.CharField(label="Hyperparameters (JSON)", required=False, max_length=20000,
                                      widget=forms.Textarea(attrs={"rows": 3, "spellcheck": "false"}),
                                      help_text='An object: {"n_estimators": 10, "max_depth": null}')
    evaluation = forms.CharField(label="Evaluation (JSON)", required=False, max_length=20000,
                                 widget=forms.Textarea(attrs={"rows": 3, "spellcheck": "false"}),
                                 help_text='A list: [{"metric": "accuracy", "value": 0.96, "dataset": "..."}]. '
                                           "Shown as self-reported, never as verified.")

    FIELD_OF = {"intendedUse": "intended_use", "explainability": "explains_with"}  # a card's field -> ours

    @classmethod
    def of(cls, card: dict) -> CardForm:
        explained = card.get("explainability") or {}
        return cls(initial={
            "task": card.get("task", ""), "intended_use": card.get("intendedUse", ""),
            "limitations": card.get("limitations", ""), "explains_with": explained.get("methods", []),
            "explains_local": explained.get("local", False), "explains_global": explained.get("global", False),
            "hyperparameters": json.dumps(card["hyperparameters"]) if card.get("hyperparameters") else "",
            "evaluation": json.dumps([{k: v for k, v in e.items() if k != "verified"} for e in card["evaluation"]])
            if card.get("evaluation") else ""})

    def clean_hyperparameters(self):
        return self._json("hyperparameters")

    def clean_evaluation(self):
        return self._json("evaluation")

    def _json(self, name: str):
        text = self.cleaned_data[name].strip()
        if not text:
            return None
        try:
            return json.loads(text)
        except ValueError as exc:
            raise forms.ValidationError(f"not JSON: {exc}") from None

    def card(self) -> dict:
        data = self.cleaned_data
        explained = {"methods": data["explains_with"], "local": data["explains_local"],
                     "global": data["explains_global"]}
        return {"task": data["task"] or None, "intendedUse": data["intended_use"], "limitations": data["limitations"],
                "explainability": explained if any(explained.values()) else None,
                "hyperparameters": data["hyperparameters"], "evaluation": data["evaluation"]}

    def refused(self, field: str, message: str) -> None:
        """A refusal of marketplace.cards ("card.evaluation[0].value"), put beside the field it is about."""
        name = field.removeprefix("card.").split(".")[0].split("[")[0]
        self.add_error(self.FIELD_OF.get(name, name) if self.FIELD_OF.get(name, name) in self.fields else None,
                       message)
