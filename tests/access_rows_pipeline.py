from tests.access_table import ADMIN_ONLY, COORD, READER_ONLY, D

# An empty POST is bad input for these: the coordinator gets a 400 that names it, the reader a 403.
COORD_BAD_INPUT = {"reader": D, "coordinator": "bad_input", "admin": "bad_input"}

ROWS = [
    ("pipeline:dataset_list", "get", (), COORD),
    ("pipeline:dataset_create", "post", (), COORD_BAD_INPUT),
    ("pipeline:dataset_detail", "get", ("dataset",), COORD),
    ("pipeline:dataset_upload", "get", ("dataset",), COORD),
    ("pipeline:dataset_upload_guess", "post", ("dataset",), COORD_BAD_INPUT),
    ("pipeline:dataset_upload_files", "post", ("dataset",), COORD_BAD_INPUT),
    ("pipeline:dataset_dicom_scan", "post", ("dataset",), COORD_BAD_INPUT),
    ("pipeline:dataset_dicom_import", "post", ("dataset",), COORD_BAD_INPUT),
    ("pipeline:case_detail", "get", ("case",), COORD),
    ("pipeline:label_review", "post", ("ai_label",), COORD),
    ("pipeline:image_volume", "get", ("image",), COORD),
    ("pipeline:label_volume", "get", ("label",), COORD),
    # Token-authenticated: a session alone is refused (401), whatever the role.
    ("pipeline:api_datasets", "get", (), {"reader": D, "coordinator": D, "admin": D}),
    ("pipeline:api_import", "post", ("dataset_name",), {"reader": D, "coordinator": D, "admin": D}),
    ("pipeline:api_import_dicom", "post", ("dataset_name",), {"reader": D, "coordinator": D, "admin": D}),
]

# URLs that answer anonymous requests themselves (token API) instead of redirecting to the login page.
SELF_AUTHENTICATED = {"pipeline:api_datasets", "pipeline:api_import", "pipeline:api_import_dicom"}


def make_objects(objects):
    from tests.factories import add_label, blob, make_dataset

    dataset = make_dataset(name="access", n_cases=1, prediction_sets=("p1",))
    case = dataset.cases.get()
    objects.update({
        "dataset": dataset, "case": case, "image": case.images.first(), "label": case.labels.first(),
        "ai_label": add_label(case, blob((32, 32, 8), (16, 16, 4), (3, 3, 2)), source="ai"),
        "dataset_name": "access",
    })
    make_label_generation_objects(objects)
    make_annotation_objects(objects)

ROWS += [
    ("pipeline:clustering_launch", "get", (), ADMIN_ONLY),
    ("pipeline:comparison_launch", "get", (), ADMIN_ONLY),
    ("pipeline:cluster_volume", "get", ("cluster_map",), ADMIN_ONLY),
]


def make_label_generation_objects(objects):
    import numpy as np

    from pipeline.datasets.storage import store_volume
    from pipeline.models import ClusteringRun, ClusterMap

    run = ClusteringRun.objects.create(dataset=objects["dataset"], status="succeeded")
    relpath, _ = store_volume(np.arange(32 * 32 * 8, dtype=np.uint16).reshape(32, 32, 8) % 5, np.eye(4))
    objects["cluster_map"] = ClusterMap.objects.create(run=run, case=objects["case"], file=relpath, n_clusters=4)

# Annotation tasks. The fixture's task belongs to another radiologist, so every item URL is refused to
# access_reader (404: the item does not exist for them) and to coordinators and admins (403: they do not draw).
NOBODY = {"reader": D, "coordinator": D, "admin": D}
ROWS += [
    ("pipeline:annotation_task_list", "get", (), COORD),
    ("pipeline:annotation_task_detail", "get", ("annotation_task",), COORD),
    ("pipeline:my_annotation_tasks", "get", (), READER_ONLY),
    ("pipeline:annotate_task_start", "get", ("annotation_task",), NOBODY),
    ("pipeline:annotate_item", "get", ("annotation_item",), NOBODY),
    ("pipeline:annotate_drawing", "post", ("annotation_item",), NOBODY),
    ("pipeline:annotate_make_ai", "post", ("annotation_item",), NOBODY),
    ("pipeline:annotate_review_ai", "post", ("annotation_item",), NOBODY),
    ("pipeline:annotate_correction", "post", ("annotation_item",), NOBODY),
    ("pipeline:annotate_finish", "post", ("annotation_item",), NOBODY),
    ("pipeline:annotate_time", "post", ("annotation_item",), NOBODY),
    ("pipeline:annotate_volume", "get", ("annotation_item", "image_key"), NOBODY),
]


def make_annotation_objects(objects):
    from pipeline.annotation.services import create_task
    from tests.factories import make_user

    radiologist = make_user("annotating_reader", "reader")
    task = create_task(dataset=objects["dataset"], name="access task", input="scribbles",
                       radiologists=[radiologist], cases=[objects["case"]])
    objects.update({"annotation_task": task, "annotation_item": task.items.get(), "image_key": "image-0"})
