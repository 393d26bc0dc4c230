from django.urls import include, path, register_converter

from labelgen_web.converters import IdConverter

# Registered before the apps' URLconfs are included: they use <id:...> for every database id.
register_converter(IdConverter, "id")

urlpatterns = [
    path("", include("accounts.urls")),
    path("", include("pipeline.urls")),
    path("studies/", include("evaluation.urls")),
]
