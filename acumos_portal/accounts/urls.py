from django.urls import path

from acumos_portal.accounts import views

app_name = "accounts"
urlpatterns = [
    path("login/", views.SignInView.as_view(), name="login"),
    path("signup/", views.sign_up, name="signup"),
    path("signup/sent/", views.sign_up_sent, name="signup-sent"),
    path("signup/confirm/<str:token>/", views.sign_up_confirm, name="signup-confirm"),
    path("logout/", views.SignOutView.as_view(), name="logout"),
    path("logout/everywhere/", views.sign_out_everywhere, name="logout-everywhere"),
    path("password/", views.PasswordChangeView.as_view(), name="password-change"),
    path("password/reset/", views.PasswordResetView.as_view(), name="password-reset"),
    path("password/reset/sent/", views.PasswordResetDoneView.as_view(), name="password-reset-done"),
    path("password/reset/<uidb64>/<token>/", views.PasswordResetConfirmView.as_view(), name="password-reset-confirm"),
    path("password/reset/done/", views.PasswordResetCompleteView.as_view(), name="password-reset-complete"),
    path("profile/", views.profile, name="profile"),
    path("tokens/", views.token_create, name="token-create"),
    path("tokens/<int:pk>/rotate/", views.token_rotate, name="token-rotate"),
    path("tokens/<int:pk>/revoke/", views.token_revoke, name="token-revoke"),
]
