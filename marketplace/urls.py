from django.urls import path

from marketplace import views

app_name = "marketplace"
urlpatterns = [
    path("", views.my_models, name="my-models"),
    path("solutions/<uuid:pk>/", views.solution, name="solution"),
    path("revisions/<uuid:pk>/", views.revision, name="revision"),
    path("revisions/<uuid:pk>/bundle/", views.bundle_download, name="bundle-download"),
    path("artifacts/<uuid:pk>/download/", views.artifact_download, name="artifact-download"),
]
