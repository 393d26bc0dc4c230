"""Dataset and case pages, volume downloads, the web upload and the token API."""

import gzip
import io
import json

import nibabel as nib
import numpy as np
import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.core.management import call_command
from django.urls import reverse

from accounts.tokens import new_token
from pipeline.models import Case, Dataset, Label
from tests.factories import make_dataset

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("media")]



AFFINE = np.diag([1.0, 1.0, 3.0, 1.0])


def nii_bytes(data, affine=AFFINE):
    return gzip.compress(nib.Nifti1Image(np.asarray(data), affine).to_bytes())


def test_dataset_page_is_paginated_without_n_plus_one(client_for, coordinator, django_assert_max_num_queries):
    ds = make_dataset(n_cases=6, prediction_sets=("p1",))
    c = client_for(coordinator)
    with django_assert_max_num_queries(12) as small:
        c.get(reverse("pipeline:dataset_detail", args=[ds.pk]))
    for i in range(60):  # many more cases, same number of queries
        Case.objects.create(dataset=ds, external_id=f"extra{i:03d}", split="TRAIN")
    with django_assert_max_num_queries(len(small.captured_queries)):
        response = c.get(reverse("pipeline:dataset_detail", args=[ds.pk]))
    assert response.context["page"].paginator.num_pages == 2
    assert b"case000" in response.content and b"t1fsce, t2" in response.content


def test_case_page_config_and_volume_downloads(client_for, coordinator):
    ds = make_dataset(n_cases=1, prediction_sets=("p1",))
    case = ds.cases.get()
    c = client_for(coordinator)
    page = c.get(reverse("pipeline:case_detail", args=[case.pk]))
    config = page.context["viewer_config"]
    assert [i["name"] for i in config["images"]] == ["t1fsce", "t2"]
    assert {lab["source"] for lab in config["labels"]} == {"truth", "expert", "prediction"}
    image = c.get(config["images"][0]["url"])
    assert image["Content-Type"] == "application/gzip" and "private" in image["Cache-Control"]
    vol = nib.Nifti1Image.from_bytes(gzip.decompress(image.content))
    assert vol.shape == (32, 32, 8) and vol.get_data_dtype() == np.int16
    label = c.get(config["labels"][0]["url"])
    lab = nib.Nifti1Image.from_bytes(gzip.decompress(label.content))
    assert lab.get_data_dtype() == np.uint8 and set(np.unique(np.asarray(lab.dataobj))) <= {0, 1}
    assert c.get(config["labels"][0]["url"], HTTP_IF_NONE_MATCH=label["ETag"]).status_code == 304


def test_review_of_ai_label_is_stored_and_excludes_it_from_export(client_for, coordinator, tmp_path):
    from tests.factories import add_label, blob

    ds = make_dataset(n_cases=2, prediction_sets=())
    cases = list(ds.cases.all())
    ai = [add_label(case, blob((32, 32, 8), (16, 16, 4), (4, 4, 2)), source="ai") for case in cases]
    c = client_for(coordinator)
    c.post(reverse("pipeline:label_review", args=[ai[0].pk]), {"review": "rejected"})
    assert Label.objects.get(pk=ai[0].pk).review == "rejected"
    call_command("export_labels", dataset=ds.name, source="ai", out=str(tmp_path / "out"))
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == [f"{cases[1].external_id}_ai.nii.gz"]


def upload(c, dataset, files, manifest, **extra):
    return c.post(reverse("pipeline:dataset_upload_files", args=[dataset.pk]),
                  {"files": files, "manifest": manifest, **extra})


def test_web_upload_guesses_and_imports(client_for, coordinator):
    ds = Dataset.objects.create(name="web")
    c = client_for(coordinator)
    guesses = c.post(reverse("pipeline:dataset_upload_guess", args=[ds.pk]),
                     json.dumps({"names": ["p7_t2.nii.gz", "p7_r2_t2_label.nii.gz", "p7_truth.nii.gz"]}),
                     content_type="application/json").json()["guesses"]
    assert [(g["case"], g["modality"], g["kind"], g["source"], g["rater"]) for g in guesses] == [
        ("p7", "t2", "image", "", ""), ("p7", "t2", "label", "expert", "r2"), ("p7", "", "label", "truth", "")]
    img = np.random.default_rng(1).normal(size=(16, 16, 4)).astype(np.float32)
    mask = np.zeros((16, 16, 4), np.uint8)
    mask[4:8, 4:8, 1:3] = 1
    files = [SimpleUploadedFile("p7_t2.nii.gz", nii_bytes(img)), SimpleUploadedFile("p7_r2_t2_label.nii.gz", nii_bytes(mask))]
    manifest = "file,case,modality,kind,source,rater,data_split\np7_t2.nii.gz,p7,t2,image,,,TEST\n" \
               "p7_r2_t2_label.nii.gz,p7,t2,label,expert,r2,TEST\n"
    report = upload(c, ds, files, manifest).json()
    assert report["ok"] and report["images"] == 1 and report["labels"] == 1, report
    assert Case.objects.get(dataset=ds).split == "TEST"


def test_web_upload_bad_file_names_the_file_and_stores_nothing(client_for, coordinator):
    ds = Dataset.objects.create(name="web")
    c = client_for(coordinator)
    files = [SimpleUploadedFile("a_t2.nii.gz", nii_bytes(np.ones((8, 8, 4), np.float32))),
             SimpleUploadedFile("a_label.nii.gz", b"garbage" * 100)]
    manifest = "file,case,modality,kind,source\na_t2.nii.gz,a,t2,image,\na_label.nii.gz,a,t2,label,expert\n"
    response = upload(c, ds, files, manifest)
    assert response.status_code == 422
    issue = response.json()["issues"][0]
    assert issue["file"] == "a_label.nii.gz" and issue["level"] == "error"
    assert not Case.objects.exists()
    missing = upload(c, ds, files[:1], manifest)
    assert missing.status_code == 400 and "a_label.nii.gz" in missing.json()["error"]


def test_api_needs_a_coordinator_token(client, reader, coordinator):
    url = reverse("pipeline:api_import", args=["scripted"])
    assert client.post(url).status_code == 401
    _, reader_key = new_token(reader)
    assert client.post(url, HTTP_AUTHORIZATION=f"Token {reader_key}").status_code == 403
    _, key = new_token(coordinator)
    img = np.arange(8 * 8 * 4, dtype=np.float32).reshape(8, 8, 4)
    response = client.post(url, {"files": [SimpleUploadedFile("s1_t2.nii.gz", nii_bytes(img))],
                                 "manifest": "file,case,modality\ns1_t2.nii.gz,s1,t2\n"},
                           HTTP_AUTHORIZATION=f"Token {key}")
    assert response.status_code == 200 and response.json()["cases_imported"] == ["s1"], response.content
    listing = client.get(reverse("pipeline:api_datasets"), HTTP_AUTHORIZATION=f"Token {key}").json()
    assert listing["datasets"] == [{"name": "scripted", "description": "", "n_cases": 1}]
    assert client.get(reverse("pipeline:api_datasets"), HTTP_AUTHORIZATION="Token lg_wrong").status_code == 401


def test_create_api_token_command(coordinator, reader, capsys):
    from django.core.management import CommandError

    call_command("create_api_token", coordinator.username)
    key = capsys.readouterr().out.strip()
    assert key.startswith("lg_") and coordinator.api_tokens.get().key_hash != key
    with pytest.raises(CommandError, match="not a coordinator"):
        call_command("create_api_token", reader.username)


def test_volume_bytes_are_valid_gzip(client_for, coordinator):
    ds = make_dataset(n_cases=1, prediction_sets=())
    img = ds.cases.get().images.first()
    data = client_for(coordinator).get(reverse("pipeline:image_volume", args=[img.pk])).content
    assert nib.Nifti1Image.from_bytes(gzip.GzipFile(fileobj=io.BytesIO(data)).read()).shape == (32, 32, 8)


def test_dataset_list_keeps_its_split_counts_after_a_form_error(client_for, coordinator):
    make_dataset(name="counted", n_cases=4)
    response = client_for(coordinator).post(reverse("pipeline:dataset_create"), {"name": "bad..name"})
    assert response.status_code == 400 and response.context["form"].errors["name"]
    html = " ".join(response.content.decode().split())
    assert "2 / 1 / 1" in html and " / / " not in html


def test_case_page_shows_the_ai_label_beside_an_expert_outline_at_first(client_for, coordinator, media):
    """Not a sparse input: the demo's box (an 'Expert (box)' label sorted before the outlines) covered the tumour."""
    from tests.factories import add_label

    case = make_dataset(n_cases=1).cases.get()
    mask = np.zeros((32, 32, 8), np.uint8)
    mask[8:24, 8:24, 2:6] = 1
    box = add_label(case, mask, source="expert", rater="a-quick")  # sorts before r1
    box.input = "box"
    box.save()
    ai = add_label(case, mask, source="ai")
    c = client_for(coordinator)
    config = c.get(reverse("pipeline:case_detail", args=[case.pk])).context["viewer_config"]
    shown = [lab["name"] for lab in config["labels"] if lab["visible"]]
    assert shown == [ai.display_name, "Expert r1 on t1fsce"], shown
    html = c.get(reverse("pipeline:case_detail", args=[case.pk])).content.decode()
    assert html.count(" checked aria-label") == 2 and 'checked aria-label="show Expert r1 on t1fsce"' in html
