"""The admins' federation forms: they read and check what was typed; federation.services does the
rest and its refusals come back under the field they name (refusal_on)."""

from __future__ import annotations

from django import forms

from acumos_portal.accounts.models import User
from federation.choices import WithdrawalPolicy
from federation.models import Subscription

MIN_INTERVAL = 60  # as federation.services.subscribe checks: at least a minute, or 0 for on demand only
INTERVAL_HELP = "how often it is imported, in seconds (at least 60); 0: only when someone presses Run now"
PEM_PLACEHOLDER = "-----BEGIN CERTIFICATE-----\n…\n-----END CERTIFICATE-----"


def refusal_on(form: forms.Form, refused) -> None:
    """A service's refusal under the field it is about, or above the form."""
    field = refused.field if refused.field in form.fields else None
    form.add_error(field, refused.message[:1].upper() + refused.message[1:])


class PeerForm(forms.Form):
    """A peer as an admin registers or edits it."""

    name = forms.CharField(max_length=100, help_text="how this site names it")
    api_url = forms.CharField(label="API URL", max_length=300,
                              help_text="its federation address, https://, e.g. https://models.example.org:9443")
    certificate = forms.CharField(
        label="Certificate or CA (PEM)", widget=forms.Textarea(attrs={"rows": 6, "placeholder": PEM_PLACEHOLDER,
                                                                      "spellcheck": "false"}),
        help_text="its own certificate, or the CA certificate that issues it (what its admins give you; "
                  "never a private key)")
    subject = forms.CharField(
        label="Subject CN", max_length=200, required=False,
        help_text="the common name in its certificate; needed with a CA, read from its own certificate otherwise")
    contact = forms.EmailField(required=False, help_text="who to write to about it")
    description = forms.CharField(required=False, widget=forms.Textarea(attrs={"rows": 2}))

    def clean_certificate(self) -> str:
        pem = self.cleaned_data["certificate"]
        if "PRIVATE KEY" in pem:  # never kept, and never drawn back into the form: the key stays with its owner
            self.data = self.data.copy()
            self.data[self.add_prefix("certificate")] = ""
            raise forms.ValidationError("This is a private key: give the certificate only (BEGIN CERTIFICATE).")
        return pem


class GrantForm(forms.Form):
    catalog = forms.ModelChoiceField(queryset=None, empty_label=None, label="Restricted catalog")

    def __init__(self, *args, catalogs, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["catalog"].queryset = catalogs


class SubscribeForm(forms.Form):
    """`catalogs`: (id, label) of the peer's catalogs, as the peer listed them; `names`: their names by id."""

    catalog = forms.ChoiceField(label="Its catalog")
    interval_seconds = forms.IntegerField(label="Interval (seconds)", min_value=0, initial=3600,
                                          help_text=INTERVAL_HELP)
    on_withdrawal = forms.ChoiceField(label="When its origin withdraws a model", choices=WithdrawalPolicy.choices,
                                      initial=WithdrawalPolicy.HIDE)
    owner = forms.CharField(label="Owner (user name)", max_length=150,
                            help_text="owns the imported models here and hears of each run")
    catalog_name = forms.CharField(widget=forms.HiddenInput, required=False, max_length=100)

    def __init__(self, *args, catalogs: list[tuple[str, str]], names: dict[str, str], **kwargs):
        # Ids of its own: the peer page also shows the grant form, whose catalog field is id_catalog.
        kwargs.setdefault("auto_id", "subscribe_%s")
        super().__init__(*args, **kwargs)
        self.catalog_names = names
        self.fields["catalog"].choices = catalogs

    def clean_interval_seconds(self) -> int:
        return _interval(self.cleaned_data["interval_seconds"])

    def clean_owner(self) -> User:
        return owner_named(self.cleaned_data["owner"])

    def clean(self):
        cleaned = super().clean()
        if cleaned.get("catalog"):
            cleaned["catalog_name"] = self.catalog_names.get(cleaned["catalog"], "")
        return cleaned


class SubscriptionSettingsForm(forms.ModelForm):
    """A subscription's own settings; where it imports from does not change (unsubscribe and subscribe)."""

    class Meta:
        model = Subscription
        fields = ["interval_seconds", "on_withdrawal", "enabled"]
        labels = {"interval_seconds": "Interval (seconds)", "on_withdrawal": "When its origin withdraws a model",
                  "enabled": "Runs on its interval"}
        help_texts = {"interval_seconds": INTERVAL_HELP,
                      "enabled": "off: it runs only when someone presses Run now"}

    def clean_interval_seconds(self) -> int:
        return _interval(self.cleaned_data["interval_seconds"])


def _interval(seconds: int) -> int:
    if seconds and seconds < MIN_INTERVAL:
        raise forms.ValidationError(f"At least {MIN_INTERVAL} seconds, or 0 to run only on demand.")
    return seconds


def owner_named(username: str) -> User:
    found = User.objects.filter(username=username.strip(), is_active=True).first()
    if found is None:
        raise forms.ValidationError(f"No active user is named “{username.strip()}”.")
    return found
