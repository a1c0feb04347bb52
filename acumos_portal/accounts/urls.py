from django.urls import path

from acumos_portal.accounts import views

app_name = "accounts"
urlpatterns = [
    path("login/", views.SignInView.as_view(), name="login"),
    path("signup/", views.sign_up, name="signup"),
    path("logout/", views.SignOutView.as_view(), name="logout"),
    path("profile/", views.profile, name="profile"),
    path("tokens/", views.token_create, name="token-create"),
    path("tokens/<int:pk>/rotate/", views.token_rotate, name="token-rotate"),
    path("tokens/<int:pk>/revoke/", views.token_revoke, name="token-revoke"),
]
