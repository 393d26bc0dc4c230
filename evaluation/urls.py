from django.urls import path

from evaluation import views_coordinator as coord
from evaluation import views_reader as reader
from evaluation import views_report as report

app_name = "evaluation"
urlpatterns = [
    # Readers
    path("my/", reader.my_studies, name="my_studies"),
    path("<id:pk>/read/", reader.study_start, name="study_start"),
    path("<id:pk>/read/<id:position>/", reader.reader_item, name="reader_item"),
    path("<id:pk>/read/<id:position>/config.json", reader.reader_item_config, name="reader_item_config"),
    path("<id:pk>/read/<id:position>/vote/", reader.reader_vote, name="reader_vote"),
    path("<id:pk>/read/done/", reader.reader_done, name="reader_done"),
    path("<id:pk>/read/items/", reader.reader_review, name="reader_review"),
    # Blinded volumes: opaque per (item, volume); only the item's reader or a coordinator may fetch them.
    path("v/<str:token>/<str:key>/", reader.volume, name="volume"),
    # Coordinators
    path("", coord.study_list, name="study_list"),
    path("new/", coord.study_create, name="study_create"),
    path("<id:pk>/", coord.study_detail, name="study_detail"),
    path("<id:pk>/status/", coord.study_status, name="study_status"),
    path("<id:pk>/unblind/", coord.study_unblind, name="study_unblind"),
    path("plan/", coord.study_plan, name="study_plan"),
    path("<id:pk>/readers/", coord.study_readers, name="study_readers"),
    path("<id:pk>/readers/<id:assignment_pk>/remove/", coord.study_reader_remove, name="study_reader_remove"),
    path("<id:pk>/pairs/", coord.study_pairs, name="study_pairs"),
    path("<id:pk>/report/", report.study_report, name="study_report"),
    path("<id:pk>/report.json", report.study_report_json, name="study_report_json"),
    path("<id:pk>/votes.csv", report.study_votes_csv, name="study_votes_csv"),
    path("<id:pk>/preview/", coord.study_preview, name="study_preview"),
    path("<id:pk>/preview/<id:assignment_pk>/<id:position>/", coord.preview_item, name="preview_item"),
    path("<id:pk>/preview/<id:assignment_pk>/<id:position>/config.json", coord.preview_item_config,
         name="preview_item_config"),
]
