"""/api/v1/batch-jobs[/{id}[/cancel|/predictions|/errors]] and /api/v1/batch-uploads (in the `api` namespace)."""

from django.urls import path

from batch.api import views

urlpatterns = [
    path("batch-jobs", views.JobsView.as_view(), name="batch-jobs"),
    path("batch-jobs/<uuid:pk>", views.JobView.as_view(), name="batch-job"),
    path("batch-jobs/<uuid:pk>/cancel", views.JobCancelView.as_view(), name="batch-job-cancel"),
    path("batch-jobs/<uuid:pk>/predictions", views.JobOutputView.as_view(), {"which": "predictions"},
         name="batch-job-predictions"),
    path("batch-jobs/<uuid:pk>/errors", views.JobOutputView.as_view(), {"which": "errors"}, name="batch-job-errors"),
    path("batch-uploads", views.UploadView.as_view(), name="batch-uploads"),
]
