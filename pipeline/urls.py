from django.urls import path

from . import views_datasets, views_runs, views_viewer

app_name = "pipeline"
urlpatterns = [
    path("datasets/", views_datasets.dataset_list, name="dataset_list"),
    path("runs/", views_runs.run_list, name="run_list"),
    path("runs/device-check/", views_runs.device_check_launch, name="device_check_launch"),
    path("runs/<int:pk>/", views_runs.run_detail, name="run_detail"),
    path("runs/<int:pk>/status.json", views_runs.run_status, name="run_status"),
    path("runs/<int:pk>/cancel/", views_runs.run_cancel, name="run_cancel"),
    path("viewer/demo/", views_viewer.viewer_demo, name="viewer_demo"),
    path("viewer/demo/volume.nii.gz", views_viewer.viewer_demo_volume, name="viewer_demo_volume"),
]
