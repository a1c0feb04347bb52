"""The licensing pages' forms. They check the shape of what was typed and turn it into what
licensing.services takes (terms as a dict, an Assignee); whether it may be done, and whether the terms
hold together, is the services' call, whose refusals come back on the form (refusal_on)."""

from __future__ import annotations

import datetime as dt
import json

from django import forms
from django.contrib.auth.models import Group
from django.db.models import Q
from django.utils import timezone

from acumos_portal.accounts.models import Organisation, User
from licensing import services
from licensing.choices import Action, AssigneeKind, OfferMode, RuleKind
from marketplace.models import Revision

ACTIONS = [Action.DOWNLOAD, Action.DEPLOY, Action.PREDICT, Action.EXPORT]
NOT_INCLUDED = ""
RULE_CHOICES = [(NOT_INCLUDED, "No rule"), (RuleKind.PERMIT, "Permitted"), (RuleKind.PROHIBIT, "Prohibited")]
# Who a licensor grants to from a page; "site" is for agreements imported from a peer only.
GRANTABLE = [(AssigneeKind.USER, "A user"), (AssigneeKind.GROUP, "A group"),
             (AssigneeKind.ORGANISATION, "An organisation"), (AssigneeKind.PEER, "A peer marketplace")]
REQUEST_FIELD_EXAMPLE = '[{"name": "company", "label": "Company", "type": "text", "required": true}]'


def refusal_on(form: forms.Form, refused) -> None:
    """A service's refusal under the field it names, else above the form. Terms are refused by their
    path ("terms.rules[1].count_limit"): those go above the terms' table, said in full."""
    field = refused.field if refused.field in form.fields else None
    form.add_error(field, refused.message[:1].upper() + refused.message[1:])


# ---------------------------------------------------------------- terms (offer, approval, grant)

class TermsForm(forms.Form):
    """Terms as a table: for each action whether it is permitted (with a count and, for deploy, a limit
    of live deployments) or prohibited, and how many days an agreement lasts."""

    days = forms.IntegerField(required=False, min_value=1, max_value=services.MAX_TERMS_DAYS,
                              label="Days", help_text="how long an agreement lasts; empty: no end")

    def __init__(self, *args, terms: dict | None = None, **kwargs):
        super().__init__(*args, **kwargs)
        for action in ACTIONS:
            label = Action(action).label
            self.fields[f"{action}_kind"] = forms.ChoiceField(choices=RULE_CHOICES, required=False, label=label)
            self.fields[f"{action}_count"] = forms.IntegerField(
                required=False, min_value=1, label=f"{label}: count limit",
                widget=forms.NumberInput(attrs={"placeholder": "no limit"}))
        self.fields["deploy_live"] = forms.IntegerField(
            required=False, min_value=1, label="Deploy: live deployments at once",
            widget=forms.NumberInput(attrs={"placeholder": "no limit"}))
        if terms is not None and not self.is_bound:
            self.initial.update(terms_initial(terms))

    def rows(self) -> list[dict]:
        """The table the template draws: one row per action, with its bound fields."""
        return [{"action": action, "label": Action(action).label, "kind": self[f"{action}_kind"],
                 "count": self[f"{action}_count"], "live": self["deploy_live"] if action == Action.DEPLOY else None}
                for action in ACTIONS]

    def terms(self) -> dict:
        """What services.parse_terms reads (it checks the rest: limits on a prohibition, at least one rule)."""
        data = self.cleaned_data
        rules = []
        for action in ACTIONS:
            kind = data.get(f"{action}_kind")
            if not kind:
                continue
            rule = {"action": action, "kind": kind}
            if data.get(f"{action}_count") is not None:
                rule["count_limit"] = data[f"{action}_count"]
            if action == Action.DEPLOY and data.get("deploy_live") is not None:
                rule["live_limit"] = data["deploy_live"]
            rules.append(rule)
        return {"rules": rules, "days": data.get("days")}


def terms_initial(terms: dict) -> dict:
    initial = {"days": terms.get("days")}
    for rule in terms.get("rules") or []:
        action = rule.get("action")
        if action not in ACTIONS:
            continue
        initial[f"{action}_kind"] = rule.get("kind", RuleKind.PERMIT)
        initial[f"{action}_count"] = rule.get("count_limit")
        if action == Action.DEPLOY:
            initial["deploy_live"] = rule.get("live_limit")
    return initial


class ApproveForm(TermsForm):
    reason = forms.CharField(required=False, max_length=2000, label="Note for the requester",
                             widget=forms.Textarea(attrs={"rows": 2}))


class DeclineForm(forms.Form):
    reason = forms.CharField(max_length=2000, label="Why", widget=forms.Textarea(attrs={"rows": 2}),
                             error_messages={"required": "say why, so that the requester knows what to change"})


class RevokeForm(forms.Form):
    reason = forms.CharField(max_length=2000, label="Why", widget=forms.Textarea(attrs={"rows": 2}),
                             error_messages={"required": "say why: the licensee is told"})


# ---------------------------------------------------------------- the licensee's side

class RequestForm(forms.Form):
    """A request for access: a message, and the questions the licensor's offer asks (request_fields)."""

    message = forms.CharField(required=False, max_length=4000, label="Message to the licensor",
                              widget=forms.Textarea(attrs={"rows": 3}),
                              help_text="What you will use the model for, and anything the licensor should know.")

    def __init__(self, *args, questions: list | None = None, **kwargs):
        super().__init__(*args, **kwargs)
        self.questions = questions or []
        for item in self.questions:
            self.fields[f"answer_{item['name']}"] = _question_field(item)

    def answers(self) -> dict:
        return {item["name"]: self.cleaned_data.get(f"answer_{item['name']}") for item in self.questions}


def _question_field(item: dict) -> forms.Field:
    label, required = item.get("label") or item["name"], bool(item.get("required"))
    if item.get("type") == "checkbox":
        return forms.BooleanField(label=label, required=required)
    if item.get("type") == "select":
        options = [(str(option), str(option)) for option in item.get("options", [])]
        return forms.ChoiceField(label=label, required=required, choices=[("", "Choose…"), *options])
    return forms.CharField(label=label, required=required, max_length=500)


class AcceptForm(forms.Form):
    """The click-through: the revision whose licence was shown and the hash of the text shown."""

    revision = forms.UUIDField(widget=forms.HiddenInput)
    text_sha256 = forms.CharField(max_length=64, widget=forms.HiddenInput)


# ---------------------------------------------------------------- the licensor's side

class GrantForm(TermsForm):
    solution = forms.ModelChoiceField(queryset=None, label="Model", empty_label=None)
    assignee_kind = forms.ChoiceField(choices=GRANTABLE, label="To", initial=AssigneeKind.USER)
    assignee = forms.CharField(max_length=200, label="Name",
                               help_text="a user name, a group's name, an organisation's name, or a peer's "
                                         "certificate subject")
    revision = forms.ModelChoiceField(queryset=None, required=False, label="Version",
                                      empty_label="Every version", help_text="the agreement covers only this one")
    ends = forms.DateField(required=False, label="Ends on", widget=forms.DateInput(attrs={"type": "date"}),
                           help_text="at 00:00 UTC that day; empty: after the terms' days, or never")

    def __init__(self, *args, solutions, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["solution"].queryset = solutions
        self.fields["revision"].queryset = (Revision.objects.filter(solution__in=solutions)
                                            .select_related("solution").order_by("solution__name", "-created"))
        self.fields["revision"].label_from_instance = lambda r: f"{r.solution.name} {r.version}"
        self.order_fields(["solution", "assignee_kind", "assignee", "revision", "ends", "days"])

    def clean(self):
        data = super().clean()
        kind, name = data.get("assignee_kind"), (data.get("assignee") or "").strip()
        if kind and name:
            try:
                data["who"] = _assignee(kind, name)
            except LookupError as missing:
                self.add_error("assignee", str(missing))
        return data

    def ends_at(self) -> dt.datetime | None:
        day = self.cleaned_data.get("ends")
        return dt.datetime.combine(day, dt.time.min, tzinfo=dt.UTC) if day else None


def _assignee(kind: str, name: str) -> services.Assignee:
    if kind == AssigneeKind.USER:
        user = User.objects.filter(username=name, is_active=True).first()
        if user is None:
            raise LookupError(f"no user is called {name!r}")
        return services.Assignee(kind, user=user)
    if kind == AssigneeKind.GROUP:
        group = Group.objects.filter(name=name).first()
        if group is None:
            raise LookupError(f"no group is called {name!r}")
        return services.Assignee(kind, group=group)
    if kind == AssigneeKind.ORGANISATION:
        organisation = Organisation.objects.filter(Q(name=name) | Q(slug=name)).first()
        if organisation is None:
            raise LookupError(f"no organisation is called {name!r}")
        return services.Assignee(kind, organisation=organisation)
    return services.Assignee(AssigneeKind.PEER, peer=name)


class OfferForm(TermsForm):
    mode = forms.ChoiceField(choices=OfferMode.choices, widget=forms.RadioSelect, label="How people get an agreement")
    request_prompt = forms.CharField(required=False, max_length=4000, label="Shown above the request form",
                                     widget=forms.Textarea(attrs={"rows": 3}))
    request_fields = forms.CharField(
        required=False, label="Questions the request form asks (JSON)",
        widget=forms.Textarea(attrs={"rows": 3, "spellcheck": "false", "placeholder": REQUEST_FIELD_EXAMPLE}),
        help_text="a list of {name, label, type: text, checkbox or select, options, required}; empty: none")
    payment_required = forms.BooleanField(required=False, label="Access is sold: people buy it first")
    payment_url = forms.URLField(required=False, label="Where access is bought", assume_scheme="https",
                                 help_text="an https:// address; a missing agreement is answered 402 with it")

    def __init__(self, *args, offer=None, **kwargs):
        super().__init__(*args, terms=offer.terms if offer is not None else None, **kwargs)
        if offer is not None and not self.is_bound:
            self.initial.update({"mode": offer.mode, "request_prompt": offer.request_prompt,
                                 "payment_required": offer.payment_required, "payment_url": offer.payment_url,
                                 "request_fields": json.dumps(offer.request_fields) if offer.request_fields else ""})

    def clean_request_fields(self) -> list:
        raw = self.cleaned_data["request_fields"].strip()
        if not raw:
            return []
        try:
            return json.loads(raw)
        except ValueError as error:
            raise forms.ValidationError(f"this is not JSON ({error})") from None


class UsageForm(forms.Form):
    """The usage page's filters (GET)."""

    solution = forms.ModelChoiceField(queryset=None, required=False, label="Model", empty_label="Every model")
    assignee = forms.CharField(required=False, max_length=200, label="Assignee",
                               help_text="a user name, a group, an organisation or a peer")
    action = forms.ChoiceField(choices=[("", "Every action"), *Action.choices], required=False, label="Action")
    start = forms.DateField(required=False, label="From", widget=forms.DateInput(attrs={"type": "date"}))
    end = forms.DateField(required=False, label="To", widget=forms.DateInput(attrs={"type": "date"}))

    def __init__(self, *args, solutions, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["solution"].queryset = solutions

    def clean(self):
        data = super().clean()
        if data.get("start") and data.get("end") and data["end"] < data["start"]:
            self.add_error("end", "the range ends before it starts")
        return data


def default_usage_range() -> tuple[dt.date, dt.date]:
    today = timezone.now().date()
    return today - dt.timedelta(days=29), today
