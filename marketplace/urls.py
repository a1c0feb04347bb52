from marketplace.views import browse, manage, model_page, my_models, notifications, revisions

app_name = "marketplace"
urlpatterns = [
    *browse.urlpatterns,
    *model_page.urlpatterns,
    *my_models.urlpatterns,
    *notifications.urlpatterns,
    *manage.urlpatterns,
    *revisions.urlpatterns,
]
