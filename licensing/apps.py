from django.apps import AppConfig


class LicensingConfig(AppConfig):
    name = "licensing"
    verbose_name = "Licensing"

    def ready(self):
        # Imported here, not at the top: an app's models and services load once the registry is ready.
        from licensing import receivers

        receivers.connect()
