from __future__ import annotations

from django import forms
from django.contrib.auth.forms import AuthenticationForm, UserCreationForm

from acumos_portal.accounts.models import User


class SignInForm(AuthenticationForm):
    """Django's sign-in form with the browser hints a password manager needs."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["username"].widget.attrs.update({"autocomplete": "username", "autofocus": True})
        self.fields["password"].widget.attrs.update({"autocomplete": "current-password"})


class TokenForm(forms.Form):
    name = forms.CharField(
        label="Token name", max_length=100, strip=True,
        help_text="What the token is for, so you recognise it later (e.g. “laptop” or “ci-pipeline”).",
        widget=forms.TextInput(attrs={"placeholder": "ci-pipeline", "autocomplete": "off"}),
    )


class SignUpForm(UserCreationForm):
    """A new account: username, email and a password checked by the site's password validators."""

    email = forms.EmailField(label="Email", help_text="For notifications; never shown to other users.")

    class Meta:
        model = User
        fields = ("username", "email")

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["username"].widget.attrs.update({"autocomplete": "username", "autofocus": True})
        self.fields["email"].widget.attrs.update({"autocomplete": "email"})
        for name in ("password1", "password2"):
            self.fields[name].widget.attrs.update({"autocomplete": "new-password"})

    def clean_email(self):
        email = self.cleaned_data["email"].strip().lower()
        if User.objects.filter(email__iexact=email).exists():
            raise forms.ValidationError("An account with this email exists already; sign in instead.")
        return email
