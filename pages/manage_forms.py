"""The publisher and admin pages' forms, and the few changes they make that no service offers yet:
reviewing a request (services.approve/decline), catalogs, users' roles and active flag, and the
site settings with a logo checked by its bytes."""

from __future__ import annotations

from django import forms
from django.core.files.uploadedfile import UploadedFile
from django.db import transaction

from acumos_portal import svg
from acumos_portal.accounts import services as account_services
from acumos_portal.accounts.choices import Role
from acumos_portal.accounts.models import SiteSettings, User
from acumos_portal.accounts.site import forget_site
from marketplace import services
from marketplace.models import Catalog, Publication

# ---------------------------------------------------------------- publish requests

APPROVE, DECLINE = "approve", "decline"


class ReviewForm(forms.Form):
    decision = forms.ChoiceField(choices=[(APPROVE, "Approve"), (DECLINE, "Decline")])
    comment = forms.CharField(
        label="Comment for the owner", required=False, max_length=2000, strip=True,
        widget=forms.Textarea(attrs={"rows": 2}),
        help_text="Required to decline: say what to change.")

    def clean(self):
        data = super().clean()
        if data.get("decision") == DECLINE and not data.get("comment"):
            self.add_error("comment", "Say why it is declined: the owner reads this comment.")
        return data


# ---------------------------------------------------------------- catalogs

class CatalogForm(forms.ModelForm):
    class Meta:
        model = Catalog
        fields = ("name", "description", "access", "self_publish")
        widgets = {"description": forms.Textarea(attrs={"rows": 3}), "access": forms.RadioSelect}
        labels = {"self_publish": "Owners publish without review"}
        help_texts = {
            "name": "Shown on model pages and as a filter when browsing.",
            "access": "Public: anyone, signed in or not, sees its models. Restricted: only signed-in users.",
            "self_publish": "Off: each publication waits for a publisher's approval.",
        }

    @transaction.atomic
    def save(self, commit: bool = True) -> Catalog:
        access_changed = self.instance.pk is not None and "access" in self.changed_data
        catalog = super().save(commit=commit)
        if access_changed:
            services.refresh_audiences(Publication.objects.filter(catalog=catalog).values("solution_id"))
        return catalog


# ---------------------------------------------------------------- users and roles

class UserAccessForm(forms.Form):
    """An admin's view of one user's roles and active flag. `acting` is the admin, who keeps their
    own Admin role and account: otherwise a slip could leave the site without an admin."""

    roles = forms.MultipleChoiceField(choices=Role.choices, required=False, widget=forms.CheckboxSelectMultiple,
                                      help_text="Publishers review publish requests; admins run this site.")
    is_active = forms.BooleanField(label="Active: may sign in and use API tokens", required=False)

    def __init__(self, *args, user: User, acting: User, **kwargs):
        kwargs.setdefault("initial", {"roles": user.roles, "is_active": user.is_active})
        super().__init__(*args, **kwargs)
        self.user, self.acting = user, acting

    def clean_roles(self):
        roles = self.cleaned_data["roles"]
        if self._is_self() and Role.ADMIN not in roles and not self.user.is_superuser:
            raise forms.ValidationError("You cannot remove your own Admin role: ask another admin to do it.")
        return roles

    def clean_is_active(self):
        active = self.cleaned_data["is_active"]
        if self._is_self() and not active:
            raise forms.ValidationError("You cannot deactivate your own account.")
        return active

    def _is_self(self) -> bool:
        return self.user.pk == self.acting.pk

    @transaction.atomic
    def save(self) -> User:
        account_services.set_roles(self.user, self.cleaned_data["roles"])
        if self.user.is_active != self.cleaned_data["is_active"]:
            self.user.is_active = self.cleaned_data["is_active"]
            self.user.save(update_fields=["is_active"])
        return self.user


# ---------------------------------------------------------------- site settings

LOGO_MAX_BYTES = 512 * 1024
_PNG = b"\x89PNG\r\n\x1a\n"
_JPEG = b"\xff\xd8\xff"


class SiteSettingsForm(forms.ModelForm):
    class Meta:
        model = SiteSettings
        fields = ("site_name", "logo", "onboarding_open", "owners_may_end_grace_early", "hooks_may_reach_private")
        labels = {"site_name": "Site name", "onboarding_open": "Onboarding is open",
                  "owners_may_end_grace_early": "Owners may end a deployment's grace period early",
                  "hooks_may_reach_private": "Retraining hooks may call private addresses"}
        help_texts = {
            "site_name": "Shown in the top bar and the browser tab. Empty: the name the site was installed with.",
            "logo": "PNG, JPEG or SVG, at most 512 KB. Shown in the top bar instead of the default mark.",
            "onboarding_open": "Off: the upload page and both upload APIs refuse new models (admins too).",
            "owners_may_end_grace_early": "A stopped deployment is kept, restartable, for its grace period, then "
                                          "destroyed. On: whoever created it may destroy it sooner (Destroy now). "
                                          "Off: only admins may; its owner waits for the end.",
            "hooks_may_reach_private": "Off: a hook's URL must be a public address; loopback (127.0.0.1, localhost), "
                                       "private (10.x, 192.168.x), link-local (169.254.x, where clouds serve their "
                                       "credentials) and the like are refused, so a model owner cannot make the "
                                       "portal call its own network. On: for a trainer on this host or network. "
                                       "Checked when a hook is saved and again at each delivery.",
        }
        widgets = {"logo": forms.ClearableFileInput(attrs={"accept": ".png,.jpg,.jpeg,.svg,image/png,image/jpeg,"
                                                                       "image/svg+xml"})}

    def clean_logo(self):
        logo = self.cleaned_data.get("logo")
        if not isinstance(logo, UploadedFile):  # unchanged (a stored file) or cleared (False)
            return logo
        if logo.size > LOGO_MAX_BYTES:
            raise forms.ValidationError(f"The logo is {logo.size // 1024} KB; the limit is 512 KB.")
        kind = logo_kind(_read(logo))
        logo.name = f"logo.{kind}"
        return logo

    @transaction.atomic
    def save(self, commit: bool = True) -> SiteSettings:
        old = SiteSettings.objects.filter(pk=self.instance.pk).values_list("logo", flat=True).first() or ""
        settings = super().save(commit=commit)
        if old and old != settings.logo.name:  # replaced or cleared: the old file goes after the commit
            storage = settings.logo.storage
            transaction.on_commit(lambda: storage.delete(old))
        transaction.on_commit(forget_site)
        return settings


def _read(upload: UploadedFile) -> bytes:
    upload.seek(0)
    data = upload.read(LOGO_MAX_BYTES + 1)
    upload.seek(0)
    return data


def logo_kind(data: bytes) -> str:
    """"png", "jpg" or "svg", decided by the bytes (never by the name or the browser's content
    type); anything else, and an SVG that could run or fetch something (acumos_portal.svg's allow-list),
    is refused with the reason."""
    if data.startswith(_PNG):
        return "png"
    if data.startswith(_JPEG):
        return "jpg"
    try:
        svg.check_svg(data)
    except svg.NotSvg as error:
        raise forms.ValidationError(
            f"The logo must be a PNG, JPEG or SVG image; this file is none of them ({error}).") from None
    except svg.UnsafeSvg as error:
        raise forms.ValidationError(f"This SVG is refused: {error}") from None
    return "svg"
