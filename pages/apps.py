from django.apps import AppConfig


class PagesConfig(AppConfig):
    """Screens that assemble several apps; the only code that may import every app (see pages/__init__.py).
    No models: the pages read through the apps' selectors and write through their services."""

    name = "pages"
    verbose_name = "Pages"
