"""The peer API at /federation/ (Acumos E5 paths, plus the change feed and image blobs)."""

from django.urls import path

from federation.api import views

app_name = "federation-api"
urlpatterns = [
    path("ping", views.ping, name="ping"),
    path("catalogs", views.catalogs, name="catalogs"),
    path("changes", views.changes, name="changes"),
    path("solutions", views.solutions, name="solutions"),
    path("solutions/<uuid:solution_id>", views.solution, name="solution"),
    path("solutions/<uuid:solution_id>/revisions", views.revisions, name="revisions"),
    path("solutions/<uuid:solution_id>/revisions/<uuid:revision_id>", views.revision, name="revision"),
    path("solutions/<uuid:solution_id>/revisions/<uuid:revision_id>/artifacts", views.artifacts, name="artifacts"),
    path("artifacts/<uuid:artifact_id>/content", views.artifact_content, name="artifact-content"),
    path("artifacts/<uuid:artifact_id>/blobs/<str:digest>", views.artifact_blob, name="artifact-blob"),
    path("peer/register", views.register, name="register"),
]
