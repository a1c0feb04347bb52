from django.apps import AppConfig


class AccountsConfig(AppConfig):
    name = "acumos_portal.accounts"
    label = "accounts"
    verbose_name = "Accounts and roles"

    def ready(self):
        from acumos_portal.accounts import signals  # noqa: F401  (default role on sign-up)
