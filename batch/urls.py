from django.urls import path

from batch import views

app_name = "batch"
urlpatterns = [
    path("batch-jobs/", views.job_list, name="list"),
    path("batch-jobs/new/", views.start, name="start"),
    path("batch-jobs/<uuid:pk>/", views.detail, name="detail"),
    path("batch-jobs/<uuid:pk>/progress/", views.progress, name="progress"),
    path("batch-jobs/<uuid:pk>/cancel/", views.cancel, name="cancel"),
    path("batch-jobs/<uuid:pk>/download/<str:which>/", views.download, name="download"),
]
