from django.urls import path

from onboarding import views

app_name = "onboarding"
urlpatterns = [
    path("new/", views.new, name="new"),
    path("jobs/<uuid:pk>/", views.job, name="job"),
    path("jobs/<uuid:pk>/steps/", views.job_steps, name="job-steps"),
]
