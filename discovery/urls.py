from django.urls import path

from discovery import views

app_name = "discovery"
urlpatterns = [
    path("discover/", views.find, name="find"),
]
