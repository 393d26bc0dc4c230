"""Import as an attacker or a careless user would: the web and API import open only the request's own
uploads, names obey one rule everywhere, and a refused import stores nothing (the Dataset row included).
Runs on SQLite and on PostgreSQL (where an over-long name used to be a DataError, a 500)."""

import gzip

import nibabel as nib
import numpy as np
import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.core.management import CommandError, call_command
from django.urls import reverse

from accounts.tokens import new_token
from pipeline.core.io.manifest import ManifestError, read_manifest
from pipeline.core.io.names import InvalidName, check_name
from pipeline.datasets.forms import DatasetForm
from pipeline.datasets.importing import import_entries
from pipeline.models import Case, Dataset, Image

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("media")]
AFFINE = np.diag([1.0, 1.0, 3.0, 1.0])



def nii_bytes(data):
    return gzip.compress(nib.Nifti1Image(np.asarray(data), AFFINE).to_bytes())


@pytest.fixture
def api(client, coordinator):
    _, key = new_token(coordinator)

    def post(name, files, manifest):
        return client.post(reverse("pipeline:api_import", args=[name]), {"files": files, "manifest": manifest},
                           HTTP_AUTHORIZATION=f"Token {key}")

    return post


@pytest.fixture
def server_secret(tmp_path):
    """A NIfTI on the server's disk, outside any upload: what a hostile manifest tries to read."""
    folder = tmp_path / "server" / "private"
    folder.mkdir(parents=True)
    secret = folder / "s1_t2.nii.gz"
    secret.write_bytes(nii_bytes(np.full((8, 8, 4), 7.0, np.float32)))
    return secret


def decoy():
    """An upload whose base name matches the server file (how the hole was reached)."""
    return SimpleUploadedFile("s1_t2.nii.gz", nii_bytes(np.zeros((8, 8, 4), np.float32)))


@pytest.mark.parametrize("form", ["absolute", "dotdot", "folder", "windows"])
def test_api_import_never_opens_a_path_named_in_the_manifest(api, server_secret, tmp_path, form):
    value = {"absolute": str(server_secret), "dotdot": f"../../../../../..{server_secret}",
             "folder": "private/s1_t2.nii.gz", "windows": "C:\\data\\s1_t2.nii.gz"}[form]
    response = api("probe", [decoy()], f"file,case,modality\n{value},s1,t2\n")
    assert response.status_code == 400, response.content
    error = response.json()["error"]
    assert "line 2" in error and "is not the bare name of an uploaded file" in error
    assert not Dataset.objects.exists() and not Image.objects.exists()


def test_refused_paths_get_one_message_whether_or_not_the_file_exists(api, server_secret):
    """No existence oracle: a real server file and a made-up one are refused with the same words."""
    answers = []
    for target in (server_secret, server_secret.with_name("no_such_file.nii.gz")):
        response = api("probe", [decoy()], f"file,case,modality\n{target},s1,t2\n")
        answers.append(response.json()["error"].replace(str(target), "<path>"))
    assert answers[0] == answers[1]


def test_web_upload_refuses_a_folder_path_too(client_for, coordinator, server_secret):
    ds = Dataset.objects.create(name="web")
    response = client_for(coordinator).post(
        reverse("pipeline:dataset_upload_files", args=[ds.pk]),
        {"files": [decoy()], "manifest": f"file,case,modality\n{server_secret},s1,t2\n"})
    assert response.status_code == 400 and "line 2" in response.json()["error"]
    assert not Case.objects.exists()


def test_upload_import_reads_the_upload_not_a_file_of_the_same_name(api, server_secret):
    response = api("scripted", [decoy()], "file,case,modality\ns1_t2.nii.gz,s1,t2\n")
    assert response.status_code == 200, response.content
    assert Image.objects.get().intensity_max == 0.0  # the decoy's zeros, not the server file's 7s


def test_the_command_line_still_reads_the_paths_its_operator_names(server_secret, tmp_path):
    manifest = tmp_path / "m.csv"
    manifest.write_text(f"file,case,modality\n{server_secret},s1,t2\n")
    call_command("import_cases", str(manifest), "--dataset", "local", "--no-progress")
    assert Image.objects.get().intensity_max == 7.0


@pytest.mark.parametrize("name,reason", [
    ("x" * 101, "101 characters long (at most 100)"),
    ("bad..name", "may not contain '..'"),
    ("a b", "may only use"),
    ("<script>x", "may only use"),
    ("tab\there", "may only use"),
    ("-lead", "may only use"),
])
def test_bad_dataset_name_in_the_api_url_is_a_400(api, name, reason):
    img = SimpleUploadedFile("s1_t2.nii.gz", nii_bytes(np.ones((8, 8, 4), np.float32)))
    response = api(name, [img], "file,case,modality\ns1_t2.nii.gz,s1,t2\n")
    assert response.status_code == 400, response.content
    assert reason in response.json()["error"] and "dataset" in response.json()["error"]
    assert not Dataset.objects.exists()


def test_bad_case_name_in_a_manifest_names_its_line(api):
    img = SimpleUploadedFile("s1_t2.nii.gz", nii_bytes(np.ones((8, 8, 4), np.float32)))
    response = api("ok-name", [img], f"file,case,modality\ns1_t2.nii.gz,{'c' * 121},t2\n")
    assert response.status_code == 400
    error = response.json()["error"]
    assert "line 2" in error and "case" in error and "at most 120" in error
    assert not Dataset.objects.exists()


def test_one_rule_for_form_manifest_and_command(tmp_path):
    for bad in ("x" * 101, "a..b", "a/b"):
        assert not DatasetForm({"name": bad}).is_valid()
        with pytest.raises(InvalidName):
            check_name(bad, "dataset")
        with pytest.raises(CommandError, match="--dataset"):
            call_command("import_cases", str(tmp_path / "none.csv"), "--dataset", bad, "--no-progress")
    manifest = tmp_path / "m.csv"
    manifest.write_text("file,case,modality\nx.nii.gz,a..b,t2\n")
    with pytest.raises(ManifestError, match="line 2: case 'a..b' may not contain"):
        read_manifest(manifest)
    assert DatasetForm({"name": "fine-name_1.2"}).is_valid()


def test_a_refused_import_stores_no_dataset(tmp_path):
    bad = tmp_path / "junk.nii.gz"
    bad.write_bytes(b"not a volume" * 50)
    entries = read_manifest(_manifest(tmp_path, f"file,case,modality\n{bad},c1,t2\n")).entries
    report = import_entries("never-made", entries)
    assert not report.ok and not Dataset.objects.filter(name="never-made").exists()


def test_the_dataset_is_made_with_its_first_good_case(tmp_path):
    good = tmp_path / "c2_t2.nii.gz"
    good.write_bytes(nii_bytes(np.ones((8, 8, 4), np.float32)))
    bad = tmp_path / "junk.nii.gz"
    bad.write_bytes(b"not a volume" * 50)
    entries = read_manifest(_manifest(tmp_path, f"file,case,modality\n{bad},c1,t2\n{good},c2,t2\n")).entries
    report = import_entries("half", entries)
    assert report.cases_failed == ["c1"] and report.cases_imported == ["c2"]
    assert list(Dataset.objects.get(name="half").cases.values_list("external_id", flat=True)) == ["c2"]


def _manifest(tmp_path, text):
    path = tmp_path / "manifest.csv"
    path.write_text(text)
    return path
