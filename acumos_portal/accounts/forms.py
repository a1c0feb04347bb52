from __future__ import annotations

from django import forms
from django.contrib.auth.forms import AuthenticationForm, SetPasswordMixin, UsernameField
from django.contrib.auth.validators import UnicodeUsernameValidator
from django.core.exceptions import ValidationError

from acumos_portal.accounts.models import User
from acumos_portal.text import hidden_character_error


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


class SignUpForm(SetPasswordMixin, forms.Form):
    """A new account's name, email and password, checked for their own shape only: whether the name or
    the email is taken is not said here (accounts.signup answers every request alike, by email)."""

    username = UsernameField(  # NFKC-normalised, as Django stores usernames
        label="Username", max_length=User._meta.get_field("username").max_length,
        help_text="Letters, digits and @ . + - _ only; it is shown with your models and comments.")
    email = forms.EmailField(label="Email", help_text="We send a link there to finish your account; "
                                                      "never shown to other users.")
    password1, password2 = SetPasswordMixin.create_password_fields()

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["username"].widget.attrs.update({"autocomplete": "username", "autofocus": True})
        self.fields["email"].widget.attrs.update({"autocomplete": "email"})

    def clean_username(self) -> str:
        username = self.cleaned_data["username"]
        error = hidden_character_error(username)
        if error:  # named before the general rule, which would only say "letters, digits and @/./+/-/_"
            raise ValidationError(f"The username {error}.")
        UnicodeUsernameValidator()(username)
        return username

    def clean_email(self) -> str:
        return self.cleaned_data["email"].strip().lower()

    def clean(self):
        cleaned = super().clean()
        self.validate_passwords()
        # Not like the name or email just typed (Django's UserAttributeSimilarityValidator), long, uncommon.
        self.validate_password_for_user(User(username=cleaned.get("username", ""), email=cleaned.get("email", "")))
        return cleaned
