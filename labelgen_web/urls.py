from django.urls import include, path

urlpatterns = [
    path("", include("accounts.urls")),
    path("", include("pipeline.urls")),
    path("studies/", include("evaluation.urls")),
]
