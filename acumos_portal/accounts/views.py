"""Sign-in, sign-up, sign-out (here or everywhere), password change and reset, the profile page and
API tokens. Tokens go through accounts.services; only the owner of a token can see or act on it
(anyone else gets 404)."""

from __future__ import annotations

from django.conf import settings
from django.contrib import messages
from django.contrib.auth import login, logout
from django.contrib.auth import views as auth_views
from django.contrib.auth.decorators import login_required
from django.http import Http404
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse_lazy
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from acumos_portal.accounts import lockout, services, signup
from acumos_portal.accounts.clientip import client_ip
from acumos_portal.accounts.forms import SignInForm, SignUpForm, TokenForm
from acumos_portal.accounts.models import ApiToken
from acumos_portal.accounts.site import current_site


class SignInView(auth_views.LoginView):
    """Past the sign-in lockout, axes answers instead (accounts.lockout.lockout_page)."""

    template_name = "accounts/login.html"
    form_class = SignInForm
    redirect_authenticated_user = True

    def get_context_data(self, **kwargs):
        return {**super().get_context_data(**kwargs), "SIGNUP_OPEN": settings.ACUMOS_SIGNUP_OPEN}


def _signup_open(request) -> None:
    if not settings.ACUMOS_SIGNUP_OPEN:
        raise Http404("sign-up is closed on this site")


@never_cache
def sign_up(request):
    """Anyone may ask for an account (a Data Scientist) unless ACUMOS_SIGNUP_OPEN is off. A form that
    passes its own checks always leads to the same page (accounts.signup says why)."""
    _signup_open(request)
    if request.user.is_authenticated:
        return redirect("marketplace:browse")
    form = SignUpForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        try:
            signup.signup_request(username=data["username"], email=data["email"], password=data["password1"],
                                  client_ip=client_ip(request), base_url=request.build_absolute_uri("/")[:-1])
        except signup.SignUpLimited as limited:
            return render(request, "accounts/signup.html", {"form": form, "limited": str(limited)}, status=429)
        return redirect("accounts:signup-sent")
    return render(request, "accounts/signup.html", {"form": form}, status=400 if form.errors else 200)


@require_GET
def sign_up_sent(request):
    _signup_open(request)
    return render(request, "accounts/signup_sent.html", {"hours": settings.ACUMOS_SIGNUP_LINK_HOURS})


@never_cache
@require_http_methods(["GET", "POST"])
def sign_up_confirm(request, token: str):
    """The email's link: a page with one button (a mail scanner that opens links makes no account),
    which makes the account and signs in."""
    _signup_open(request)
    try:
        if request.method == "GET":
            return render(request, "accounts/signup_confirm.html", {"pending": signup.pending_signup(token)})
        user = signup.signup_confirm(token)
    except signup.SignUpLinkInvalid:
        return render(request, "accounts/signup_confirm.html", {"invalid": True}, status=404)
    except signup.SignUpNameTaken:
        return render(request, "accounts/signup_confirm.html", {"taken": True}, status=409)
    login(request, user, backend="django.contrib.auth.backends.ModelBackend")
    messages.success(request, f"Welcome, {user.username}. Onboard a model, or browse what others share.")
    return redirect("marketplace:browse")


class SignOutView(auth_views.LogoutView):
    """POST only (Django's LogoutView refuses GET)."""

    def post(self, request, *args, **kwargs):
        response = super().post(request, *args, **kwargs)
        messages.info(request, "You are signed out.")
        return response


@require_POST
@login_required
def sign_out_everywhere(request):
    """Every session of the user (this one too) and every JWT from /onboarding-app/v2/auth."""
    ended = services.sign_out_everywhere(request.user)
    logout(request)
    messages.info(request, f"You are signed out everywhere ({ended} session{'s' if ended != 1 else ''}), and "
                           "every JWT from /onboarding-app/v2/auth is refused. API tokens still work until "
                           "you revoke them on your profile.")
    return redirect("accounts:login")


class PasswordChangeView(auth_views.PasswordChangeView):
    template_name = "accounts/password_change.html"
    success_url = reverse_lazy("accounts:profile")

    def form_valid(self, form):
        # Django saves the password (a new auth generation: every JWT ends) and keeps this session under
        # a new key; every other session of the user is deleted here.
        response = super().form_valid(form)
        session_key = self.request.session.session_key
        ended = services.sessions_end(self.request.user, keep=session_key)
        services.session_remember(self.request.user, session_key)
        messages.success(self.request, f"Your password is changed. Your other sessions ({ended}) and every JWT "
                                       "from /onboarding-app/v2/auth are signed out; API tokens still work.")
        return response


class PasswordResetView(auth_views.PasswordResetView):
    """Sends the link only to an active account with that email, and says the same either way."""

    template_name = "accounts/password_reset.html"
    email_template_name = "accounts/email/password_reset.txt"
    subject_template_name = "accounts/email/password_reset_subject.txt"
    success_url = reverse_lazy("accounts:password-reset-done")

    @property
    def extra_email_context(self):
        return {"site_name": current_site().name}


class PasswordResetDoneView(auth_views.PasswordResetDoneView):
    template_name = "accounts/password_reset_sent.html"


class PasswordResetConfirmView(auth_views.PasswordResetConfirmView):
    template_name = "accounts/password_reset_confirm.html"
    success_url = reverse_lazy("accounts:password-reset-complete")

    def form_valid(self, form):
        response = super().form_valid(form)  # the new password: a new auth generation, every JWT ends
        services.sessions_end(form.user)
        # Who proved the mailbox may sign in from here at once, even if locked out from here.
        lockout.forget_failures(username=form.user.get_username(), ip_address=client_ip(self.request))
        return response


class PasswordResetCompleteView(auth_views.PasswordResetCompleteView):
    template_name = "accounts/password_reset_done.html"


def _profile(request, form: TokenForm, status: int = 200):
    tokens = ApiToken.objects.filter(user=request.user)
    return render(request, "accounts/profile.html", {"form": form, "tokens": tokens}, status=status)


def _token_shown_once(request, token: ApiToken, key: str, rotated_from: ApiToken | None = None):
    response = render(request, "accounts/token_created.html",
                      {"token": token, "key": key, "rotated_from": rotated_from})
    response["Cache-Control"] = "no-store"  # the plain key must not stay in any cache
    return response


@require_GET
@login_required
def profile(request):
    return _profile(request, TokenForm())


@require_POST
@login_required
@never_cache
def token_create(request):
    form = TokenForm(request.POST)
    if not form.is_valid():
        return _profile(request, form, status=400)
    token, key = services.token_create(user=request.user, name=form.cleaned_data["name"])
    return _token_shown_once(request, token, key)


@require_POST
@login_required
@never_cache
def token_rotate(request, pk: int):
    old = get_object_or_404(ApiToken, pk=pk, user=request.user, revoked__isnull=True)
    token, key = services.token_rotate(token=old)
    return _token_shown_once(request, token, key, rotated_from=old)


@require_POST
@login_required
def token_revoke(request, pk: int):
    token = get_object_or_404(ApiToken, pk=pk, user=request.user)
    services.token_revoke(token=token)
    messages.success(request, f"Token “{token.name}” ({token.prefix}…) is revoked; it no longer works.")
    return redirect("accounts:profile")
