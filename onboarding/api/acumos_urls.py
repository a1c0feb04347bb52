app_name = "acumos"
urlpatterns = []
