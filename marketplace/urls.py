from marketplace.views import browse, model_page, my_models, revisions

app_name = "marketplace"
urlpatterns = [
    *browse.urlpatterns,
    *model_page.urlpatterns,
    *my_models.urlpatterns,
    *revisions.urlpatterns,
]
