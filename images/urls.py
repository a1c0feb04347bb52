from django.urls import path

from images import views

app_name = "images"
urlpatterns = [
    path("revisions/<uuid:pk>/image/build/", views.start_build, name="build"),
    path("revisions/<uuid:pk>/image.tar", views.archive, name="archive"),
]
