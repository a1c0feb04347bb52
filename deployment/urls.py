from django.urls import path

from deployment import views

app_name = "deployment"
urlpatterns = [
    path("revisions/<uuid:pk>/deploy/", views.deploy, name="deploy"),
    path("revisions/<uuid:pk>/deployment-bundle.zip", views.deployment_bundle, name="bundle"),
    path("deployments/", views.deployment_list, name="list"),
    path("deployments/<uuid:pk>/", views.detail, name="detail"),
    path("deployments/<uuid:pk>/panel/", views.panel, name="panel"),
    path("deployments/<uuid:pk>/swap/", views.swap, name="swap"),
    path("deployments/<uuid:pk>/rollback/", views.rollback, name="rollback"),
    path("deployments/<uuid:pk>/stop/", views.stop, name="stop"),
    path("deployments/<uuid:pk>/start/", views.start, name="start"),
    path("deployments/<uuid:pk>/destroy/", views.destroy, name="destroy"),
    path("deployments/<uuid:pk>/check/", views.check, name="check"),
    path("deployments/<uuid:pk>/rename/", views.rename, name="rename"),
    path("deployments/<uuid:pk>/share/", views.share, name="share"),
    path("deployments/<uuid:pk>/try/", views.try_it, name="try"),
    path("targets/", views.target_list, name="targets"),
    path("targets/new/", views.target_edit, name="target-new"),
    path("targets/<uuid:pk>/", views.target_edit, name="target-edit"),
]
