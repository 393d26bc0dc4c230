from django.urls import path

from . import views_coordinator as coord
from . import views_reader as reader
from . import views_report as report

app_name = "evaluation"
urlpatterns = [
    # Readers
    path("my/", reader.my_studies, name="my_studies"),
    path("<int:pk>/read/", reader.study_start, name="study_start"),
    path("<int:pk>/read/<int:position>/", reader.reader_item, name="reader_item"),
    path("<int:pk>/read/<int:position>/config.json", reader.reader_item_config, name="reader_item_config"),
    path("<int:pk>/read/<int:position>/vote/", reader.reader_vote, name="reader_vote"),
    path("<int:pk>/read/done/", reader.reader_done, name="reader_done"),
    path("<int:pk>/read/items/", reader.reader_review, name="reader_review"),
    # Blinded volumes: opaque per (item, volume); only the item's reader or a coordinator may fetch them.
    path("v/<str:token>/<str:key>/", reader.volume, name="volume"),
    # Coordinators
    path("", coord.study_list, name="study_list"),
    path("new/", coord.study_create, name="study_create"),
    path("<int:pk>/", coord.study_detail, name="study_detail"),
    path("<int:pk>/status/", coord.study_status, name="study_status"),
    path("<int:pk>/readers/", coord.study_readers, name="study_readers"),
    path("<int:pk>/readers/<int:assignment_pk>/remove/", coord.study_reader_remove, name="study_reader_remove"),
    path("<int:pk>/pairs/", coord.study_pairs, name="study_pairs"),
    path("<int:pk>/report/", report.study_report, name="study_report"),
    path("<int:pk>/report.json", report.study_report_json, name="study_report_json"),
    path("<int:pk>/votes.csv", report.study_votes_csv, name="study_votes_csv"),
    path("<int:pk>/preview/", coord.study_preview, name="study_preview"),
    path("<int:pk>/preview/<int:assignment_pk>/<int:position>/", coord.preview_item, name="preview_item"),
    path("<int:pk>/preview/<int:assignment_pk>/<int:position>/config.json", coord.preview_item_config,
         name="preview_item_config"),
]
