"""The marketplace's pages, one module per area (pages.views); each module lists its own `urlpatterns`."""

from pages.views import browse, licence_editor, manage, model_page, my_models, notifications, revisions, trying

# The names are the product's URLs, older than this app: templates ({% url "marketplace:..." %}),
# reverse() calls and settings (LOGIN_REDIRECT_URL) use them, so the namespace stays "marketplace".
app_name = "marketplace"
urlpatterns = [
    *browse.urlpatterns,
    *model_page.urlpatterns,
    *my_models.urlpatterns,
    *notifications.urlpatterns,
    *manage.urlpatterns,
    *revisions.urlpatterns,
    *licence_editor.urlpatterns,
    *trying.urlpatterns,
]
