from django.urls import path

from . import views

app_name = "evaluation"
urlpatterns = [
    path("my/", views.my_studies, name="my_studies"),
]
