from django.urls import path

from pipeline.annotation import coordinator as views_annotation_tasks
from pipeline.annotation import views as views_annotate
from pipeline.datasets import dicom_views as views_dicom
from pipeline.datasets import upload_views as views_upload
from pipeline.datasets import viewer_views as views_viewer
from pipeline.datasets import views as views_datasets
from pipeline.labelgen import views as views_labelgen
from pipeline.runs import views as views_runs
from pipeline.unet import views as views_training

app_name = "pipeline"
urlpatterns = [
    path("datasets/", views_datasets.dataset_list, name="dataset_list"),
    path("datasets/new/", views_datasets.dataset_create, name="dataset_create"),
    path("datasets/<id:pk>/", views_datasets.dataset_detail, name="dataset_detail"),
    path("datasets/<id:pk>/upload/", views_upload.upload_page, name="dataset_upload"),
    path("datasets/<id:pk>/upload/guess/", views_upload.upload_guess, name="dataset_upload_guess"),
    path("datasets/<id:pk>/upload/files/", views_upload.upload_files, name="dataset_upload_files"),
    path("datasets/<id:pk>/upload/dicom/scan/", views_dicom.dicom_scan, name="dataset_dicom_scan"),
    path("datasets/<id:pk>/upload/dicom/", views_dicom.dicom_import_upload, name="dataset_dicom_import"),
    path("cases/<id:pk>/", views_datasets.case_detail, name="case_detail"),
    path("labels/<id:pk>/review/", views_datasets.label_review, name="label_review"),
    path("volumes/image/<id:pk>.nii.gz", views_datasets.image_volume, name="image_volume"),
    path("volumes/label/<id:pk>.nii.gz", views_datasets.label_volume, name="label_volume"),
    path("api/v1/datasets/", views_upload.api_datasets, name="api_datasets"),
    path("api/v1/datasets/<str:name>/import/", views_upload.api_import, name="api_import"),
    path("api/v1/datasets/<str:name>/import-dicom/", views_dicom.api_import_dicom, name="api_import_dicom"),
    path("runs/", views_runs.run_list, name="run_list"),
    path("runs/device-check/", views_runs.device_check_launch, name="device_check_launch"),
    path("runs/compare-unets/", views_training.comparison_launch, name="comparison_launch"),
    path("runs/generate-labels/", views_labelgen.clustering_launch, name="clustering_launch"),
    path("volumes/clusters/<id:pk>.nii.gz", views_labelgen.cluster_volume, name="cluster_volume"),
    path("runs/<id:pk>/", views_runs.run_detail, name="run_detail"),
    path("runs/<id:pk>/status.json", views_runs.run_status, name="run_status"),
    path("runs/<id:pk>/cancel/", views_runs.run_cancel, name="run_cancel"),
    path("annotation-tasks/", views_annotation_tasks.task_list, name="annotation_task_list"),
    path("annotation-tasks/<id:pk>/", views_annotation_tasks.task_detail, name="annotation_task_detail"),
    path("annotate/", views_annotate.my_tasks, name="my_annotation_tasks"),
    path("annotate/tasks/<id:pk>/", views_annotate.task_start, name="annotate_task_start"),
    path("annotate/items/<id:pk>/", views_annotate.item_page, name="annotate_item"),
    path("annotate/items/<id:pk>/drawing/", views_annotate.save_drawing, name="annotate_drawing"),
    path("annotate/items/<id:pk>/ai/", views_annotate.make_ai, name="annotate_make_ai"),
    path("annotate/items/<id:pk>/ai/review/", views_annotate.review_ai, name="annotate_review_ai"),
    path("annotate/items/<id:pk>/ai/correction/", views_annotate.save_correction, name="annotate_correction"),
    path("annotate/items/<id:pk>/finish/", views_annotate.finish, name="annotate_finish"),
    path("annotate/items/<id:pk>/time/", views_annotate.add_time, name="annotate_time"),
    path("annotate/items/<id:pk>/volumes/<slug:key>.nii.gz", views_annotate.volume, name="annotate_volume"),
    path("viewer/demo/", views_viewer.viewer_demo, name="viewer_demo"),
    path("viewer/demo/volume.nii.gz", views_viewer.viewer_demo_volume, name="viewer_demo_volume"),
]
