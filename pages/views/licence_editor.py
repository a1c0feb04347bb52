"""The licence editor (design section 6, "Licence editor"). An owner writes a new licence for a ready
version from a template (Apache-2.0, MIT, CC-BY-4.0, or a proprietary licence that needs an agreement),
sees it checked as they type (htmx posts the fields to .../check, which answers the check panel),
downloads its license.json, and saves it as a new version (licensing.relicensing.relicense), whose
page it then opens. Without a version (/licences/new/, linked from the upload page) the same editor
makes a license.json to download and attach to an upload.

A profile is checked as onboarding checks an uploaded one (onboarding.validation: the schema, then
licensing.profiles.check), so what the editor accepts an upload accepts too."""

from __future__ import annotations

import json
from dataclasses import dataclass, field

from django import forms
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import path, reverse
from django.utils import timezone
from django.views.decorators.http import require_http_methods, require_POST

from acumos_portal.api.refusals import Refused
from licensing import profiles, relicensing, templates
from licensing.models import LicenceProfile
from licensing.services import may_license
from marketplace.models import Revision
from marketplace.selectors import visible_revisions
from onboarding.validation import Invalid, validate_licence_profile

DEFAULT_TEMPLATE = "apache-2.0"
TEMPLATE_CHOICES = [(t.key, t.label) for t in templates.TEMPLATES.values()]
# What each template is for, under its name in the picker.
TEMPLATE_HINTS = {
    "apache-2.0": "Open: use, change and share, with a patent grant. Anyone may download and deploy.",
    "mit": "Open and short: use, change and share, keep the notice. Anyone may download and deploy.",
    "cc-by-4.0": "Open, for data and other works: share and adapt with credit. Anyone may download and deploy.",
    "proprietary": "Your own terms. People need an agreement from you before they download or deploy.",
}
# license.json's properties (as the schema's and profiles.check's errors name them) -> the editor's fields.
PROPERTY_FIELDS = {"spdx": "spdx", "licenseText": "text", "copyright.year": "year", "copyright.company": "company",
                   "companyName": "company", "keyword": "company", "licenseName": "company",
                   "contact.name": "contact_name", "contact.email": "contact_email", "contact.URL": "contact_url",
                   "rtuRequired": "rtu_required"}


class LicenceForm(forms.Form):
    """The editor's fields. The licence's text and SPDX expression start as the template's (filled in
    when a template is picked); left empty they are the template's too."""

    template = forms.ChoiceField(label="Start from", choices=TEMPLATE_CHOICES, widget=forms.RadioSelect)
    year = forms.IntegerField(label="Copyright year", min_value=1900, max_value=3000)
    company = forms.CharField(label="Copyright holder", max_length=200,
                              help_text="The company or person who licenses the model.")
    spdx = forms.CharField(
        label="SPDX expression", required=False, max_length=500,
        help_text="Ids from spdx.org/licenses joined with AND, OR, WITH (“Apache-2.0 OR MIT”); "
                  "LicenseRef-<name> for your own licence.")
    rtu_required = forms.BooleanField(
        label="Needs an agreement", required=False,
        help_text="rtuRequired: people must be granted access by you before they download or deploy the model.")
    text = forms.CharField(label="Licence text", required=False, strip=False,
                           widget=forms.Textarea(attrs={"rows": 14, "spellcheck": "true"}))
    contact_name = forms.CharField(label="Contact name", required=False, max_length=200)
    contact_email = forms.EmailField(label="Contact email", required=False, max_length=254)
    contact_url = forms.CharField(label="Contact address (URL)", required=False, max_length=500)
    version = forms.CharField(label="New version", required=False, max_length=50,
                              help_text="The version the new licence is saved as.")

    def clean_text(self) -> str:
        # A textarea sends CRLF line ends: stored as LF, as the licence's hash reads it anyway.
        return self.cleaned_data["text"].replace("\r\n", "\n").replace("\r", "\n")

    def profile(self) -> dict:
        """The license.json these fields make (templates.render; not checked yet). Call once valid."""
        data = self.cleaned_data
        return templates.render(
            data["template"], year=data["year"], company=data["company"], contact_name=data["contact_name"],
            contact_email=data["contact_email"], contact_url=data["contact_url"].strip(),
            spdx=data["spdx"].strip() or None, text=data["text"] if data["text"].strip() else None,
            rtu_required=data["rtu_required"])


@dataclass
class Checked:
    """What the check panel shows: the profile as it would be saved, or the errors, each naming a field."""

    profile: dict | None = None
    errors: list[dict] = field(default_factory=list)  # {"field": label, "message"}
    spdx: str = ""
    spdx_ids: list[str] = field(default_factory=list)
    text_sha256: str = ""
    rtu_required: bool = False

    @property
    def ok(self) -> bool:
        return self.profile is not None and not self.errors


def check_form(form: LicenceForm, revision: Revision | None = None) -> Checked:
    """The fields as a profile, checked as an upload's license.json is; the placeholder of the
    proprietary template, which is not a licence yet; and, for a version, the new version's number."""
    checked = _check_profile(form)
    if revision is not None and "version" not in form.errors:
        try:
            relicensing.checked_version(revision.solution, form.cleaned_data.get("version", ""))
        except Refused as refused:
            checked.errors.append({"field": _label(form, "version"), "message": refused.message})
    return checked


def _check_profile(form: LicenceForm) -> Checked:
    if not form.is_valid():
        return Checked(errors=[{"field": _label(form, name), "message": message}
                               for name, messages_ in form.errors.items() for message in messages_])
    try:
        profile = validate_licence_profile(form.profile())
    except Invalid as invalid:
        return Checked(errors=[{"field": _label(form, PROPERTY_FIELDS.get(e["field"])) or e["field"],
                                "message": e["message"]} for e in invalid.errors or [{"message": invalid.message}]])
    except Refused as refused:  # templates.render: no holder
        return Checked(errors=[{"field": _label(form, refused.field), "message": refused.message}])
    summary = profiles.check(profile)
    errors = []
    if templates.still_placeholder(profile.get("licenseText", "")):
        errors.append({"field": form.fields["text"].label,
                       "message": f"replace the paragraph {templates.PLACEHOLDER_MARK} with your licence's terms"})
    return Checked(profile=profile, errors=errors, spdx=summary.spdx, spdx_ids=summary.spdx_ids,
                   text_sha256=summary.text_sha256, rtu_required=summary.rtu_required)


def _label(form: forms.Form, name: str | None) -> str:
    if name in form.fields:
        return str(form.fields[name].label)
    return "" if name in (None, "__all__") else name


# ---------------------------------------------------------------- starting values

def initial_values(user, revision: Revision | None) -> dict:
    """The current licence of the version when it has one, otherwise the Apache-2.0 template in the
    user's name."""
    current = _current_profile(revision) if revision is not None else None
    if current:
        return _values_of(current)
    return template_values(DEFAULT_TEMPLATE, {"year": timezone.now().year, "company": _holder(user)})


def template_values(key: str, kept: dict) -> dict:
    """The fields a template fills in (SPDX, text, rtuRequired) over what the person typed (`kept`)."""
    key = key if key in templates.TEMPLATES else DEFAULT_TEMPLATE
    year = kept.get("year") or timezone.now().year
    company = (kept.get("company") or "").strip() or "Your company"
    try:
        year = int(year)
    except (TypeError, ValueError):
        year = timezone.now().year
    rendered = templates.render(key, year=year, company=company)
    return {**kept, "template": key, "year": year, "company": company, "spdx": rendered["spdx"],
            "text": rendered["licenseText"], "rtu_required": rendered["rtuRequired"]}


def _holder(user) -> str:
    return (getattr(user, "organization", "") or user.get_full_name() or user.username).strip()


def _current_profile(revision: Revision) -> dict | None:
    noted = LicenceProfile.objects.filter(revision=revision).first()
    return noted.profile if noted is not None and isinstance(noted.profile, dict) else None


def _values_of(profile: dict) -> dict:
    copyright_ = profile.get("copyright") if isinstance(profile.get("copyright"), dict) else {}
    contact = profile.get("contact") if isinstance(profile.get("contact"), dict) else {}
    spdx = str(profile.get("spdx") or profile.get("keyword") or "")
    rtu_required = bool(profile.get("rtuRequired"))
    return {"template": _template_of(spdx, rtu_required),
            "year": copyright_.get("year") or timezone.now().year, "company": str(copyright_.get("company") or ""),
            "spdx": spdx, "text": str(profile.get("licenseText") or ""), "rtu_required": rtu_required,
            "contact_name": contact.get("name", ""), "contact_email": contact.get("email", ""),
            "contact_url": contact.get("URL", "")}


def _template_of(spdx: str, rtu_required: bool) -> str:
    for template in templates.TEMPLATES.values():
        if template.spdx == spdx:
            return template.key
    return "proprietary" if rtu_required else DEFAULT_TEMPLATE


# ---------------------------------------------------------------- the pages

def _owned_revision(request, pk) -> Revision:
    """The version, to its owners: 404 when the user may not see it, 403 (Refused) when they may but do
    not own it (or it was imported: its licence is its origin's)."""
    revision = get_object_or_404(visible_revisions(request.user).select_related("solution"), pk=pk)
    if not may_license(request.user, revision.solution):
        raise _NotYours(revision)
    return revision


class _NotYours(Exception):
    def __init__(self, revision: Revision):
        self.revision = revision


def _refuse(request, revision: Revision) -> HttpResponse:
    solution = revision.solution
    reason = (f"{solution.name} was imported from {solution.imported_from}: its licence is changed there."
              if solution.imported_from else f"Only the owners of {solution.name} may change its licence.")
    return render(request, "licensing/editor.html", {"revision": revision, "solution": solution,
                                                     "refusal": reason}, status=403)


def _page(request, form: LicenceForm, revision: Revision | None, checked: Checked, status: int = 200):
    solution = revision.solution if revision is not None else None
    urls = _urls(revision)
    return render(request, "licensing/editor.html", {
        "form": form, "revision": revision, "solution": solution, "checked": checked, "urls": urls,
        "hints": TEMPLATE_HINTS, "placeholder_mark": templates.PLACEHOLDER_MARK,
        "current": LicenceProfile.objects.filter(revision=revision).first() if revision is not None else None,
    }, status=status)


def _urls(revision: Revision | None) -> dict:
    if revision is None:
        return {"editor": reverse("marketplace:licence-new"), "check": reverse("marketplace:licence-new-check")}
    return {"editor": reverse("marketplace:licence-editor", args=[revision.pk]),
            "check": reverse("marketplace:licence-check", args=[revision.pk])}


@login_required
@require_http_methods(["GET", "POST"])
def editor(request, pk=None):
    revision = None
    if pk is not None:
        try:
            revision = _owned_revision(request, pk)
        except _NotYours as not_yours:
            return _refuse(request, not_yours.revision)
    if request.method == "GET":
        initial = initial_values(request.user, revision)
        if revision is not None:
            initial["version"] = relicensing.suggested_version(revision.solution)
        form = LicenceForm(initial=initial)
        return _page(request, form, revision, check_form(LicenceForm(initial), revision))
    action = request.POST.get("action", "")
    if action == "template":
        return _switch_template(request, revision)
    form = LicenceForm(request.POST)
    checked = check_form(form, None if action == "download" else revision)
    if action == "download":
        return _download(request, form, revision, checked)
    if action == "save" and revision is not None:
        return _save(request, form, revision, checked)
    return _page(request, form, revision, checked)


def _switch_template(request, revision: Revision | None):
    """A template picked: its SPDX expression, text and rtuRequired replace the fields; the rest stays."""
    kept = {name: request.POST.get(name, "") for name in ("year", "company", "contact_name", "contact_email",
                                                          "contact_url", "version")}
    values = template_values(request.POST.get("template", ""), kept)
    form = LicenceForm(initial=values)
    return _page(request, form, revision, check_form(LicenceForm(values), revision))


def _download(request, form: LicenceForm, revision: Revision | None, checked: Checked):
    if checked.profile is None:  # a placeholder still there may be downloaded: it is a draft
        _put_errors(form, checked)
        return _page(request, form, revision, checked, status=400)
    response = HttpResponse(json.dumps(checked.profile, indent=2, ensure_ascii=False) + "\n",
                            content_type="application/json; charset=utf-8")
    response["Content-Disposition"] = 'attachment; filename="license.json"'
    return response


def _save(request, form: LicenceForm, revision: Revision, checked: Checked):
    if not checked.ok:
        _put_errors(form, checked)
        return _page(request, form, revision, checked, status=400)
    try:
        made = relicensing.relicense(request.user, revision, version=form.cleaned_data["version"],
                                     profile=checked.profile)
    except Refused as refused:
        form.add_error(refused.field if refused.field in form.fields else None, refused.message)
        return _page(request, form, revision, checked, status=400)
    messages.success(request, f"Version {made.version} is ready with the licence {checked.spdx or 'you wrote'}; "
                              f"version {revision.version} keeps its licence.")
    return redirect("marketplace:revision", made.pk)


def _put_errors(form: LicenceForm, checked: Checked) -> None:
    """The check's errors on the form, next to the fields they name (the form's own are there already)."""
    labels = {str(f.label): name for name, f in form.fields.items()}
    for error in checked.errors:
        name = labels.get(error["field"])
        if name is None or error["message"] not in form.errors.get(name, []):
            form.add_error(name, error["message"])


@login_required
@require_POST
def check(request, pk=None):
    """The check panel alone, for htmx: the canonical SPDX expression, the errors naming their fields,
    the text's hash."""
    revision = None
    if pk is not None:
        try:
            revision = _owned_revision(request, pk)
        except _NotYours:
            return HttpResponse(status=403)
    form = LicenceForm(request.POST)
    return render(request, "licensing/_editor_check.html", {"checked": check_form(form, revision), "form": form,
                                                            "revision": revision, "oob": True})


urlpatterns = [
    path("revisions/<uuid:pk>/licence/", editor, name="licence-editor"),
    path("revisions/<uuid:pk>/licence/check", check, name="licence-check"),
    path("licences/new/", editor, name="licence-new"),
    path("licences/check", check, name="licence-new-check"),
]
