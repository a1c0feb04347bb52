"""Sign-in, sign-out, the profile page and API tokens. Tokens go through accounts.services;
only the owner of a token can see or act on it (anyone else gets 404)."""

from __future__ import annotations

from django.conf import settings
from django.contrib import messages
from django.contrib.auth import login
from django.contrib.auth import views as auth_views
from django.contrib.auth.decorators import login_required
from django.http import Http404
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET, require_POST

from acumos_portal.accounts import services
from acumos_portal.accounts.forms import SignInForm, SignUpForm, TokenForm
from acumos_portal.accounts.models import ApiToken


class SignInView(auth_views.LoginView):
    template_name = "accounts/login.html"
    form_class = SignInForm
    redirect_authenticated_user = True

    def get_context_data(self, **kwargs):
        return {**super().get_context_data(**kwargs), "SIGNUP_OPEN": settings.ACUMOS_SIGNUP_OPEN}


@never_cache
def sign_up(request):
    """Anyone may make an account (a Data Scientist) unless ACUMOS_SIGNUP_OPEN is off."""
    if not settings.ACUMOS_SIGNUP_OPEN:
        raise Http404("sign-up is closed on this site")
    if request.user.is_authenticated:
        return redirect("marketplace:browse")
    form = SignUpForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        user = form.save()  # the post_save signal gives the default role
        login(request, user, backend="django.contrib.auth.backends.ModelBackend")
        messages.success(request, f"Welcome, {user.username}. Onboard a model, or browse what others share.")
        return redirect("marketplace:browse")
    return render(request, "accounts/signup.html", {"form": form}, status=400 if form.errors else 200)


class SignOutView(auth_views.LogoutView):
    """POST only (Django's LogoutView refuses GET)."""

    def post(self, request, *args, **kwargs):
        response = super().post(request, *args, **kwargs)
        messages.info(request, "You are signed out.")
        return response


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
