"""Blinding, tested: everything a reader's browser fetches during a study carries no arm name, prediction
set name or id, run id, or any token that is stable per arm across items.

A reader walks a whole study the way the page does (pages, item JSON, every volume, votes, end pages,
static files); every byte of every response (volumes also decompressed) and every header is searched.
"""

import gzip
import io
import json
import re
from urllib.parse import urlparse

import nibabel as nib
import pytest
from django.core.management.color import no_style
from django.db import connection
from django.urls import reverse

from evaluation.models import Arm, Study
from evaluation.services import create_study
from pipeline.models import Case, Dataset, DeviceCheckRun, PredictionSet
from tests.factories import add_image, add_label, blob

pytestmark = pytest.mark.django_db

SET_NAMES = ("alphanet-zq", "betanet-zq", "gammanet-zq")
DESCRIPTIONS = ("trained on expert labels qqx", "trained on ai labels qqx", "third source qqx")
SET_PKS = (900001, 900002, 900003)
RUN_PK = 800001
ARM_PK_BASE = 700000


def _bump_sequences():
    # Make arm ids long and distinctive (a short id such as 3 would match everywhere); on PostgreSQL the
    # sequences must be told about explicitly inserted ids.
    dataset = Dataset.objects.create(name="seq")
    pset = PredictionSet.objects.create(dataset=dataset, name="seq")
    s = Study.objects.create(dataset=dataset, title="seq")
    Arm.objects.create(pk=ARM_PK_BASE, study=s, name="seq", prediction_set=pset)
    with connection.cursor() as cursor:
        for sql in connection.ops.sequence_reset_sql(no_style(), [Arm, PredictionSet, DeviceCheckRun]):
            cursor.execute(sql)
    s.delete()
    pset.delete()
    dataset.delete()


@pytest.fixture
def study(settings, tmp_path, reader):
    settings.MEDIA_ROOT = tmp_path
    _bump_sequences()
    run = DeviceCheckRun.objects.create(pk=RUN_PK, status="succeeded")
    dataset = Dataset.objects.create(name="blinding")
    sets = [PredictionSet.objects.create(pk=pk, dataset=dataset, name=n, description=d, run=run)
            for pk, n, d in zip(SET_PKS, SET_NAMES, DESCRIPTIONS, strict=True)]
    shape = (32, 32, 8)
    for i in range(6):
        case = Case.objects.create(dataset=dataset, external_id=f"c{i}", split="TEST")
        center = (14 + i % 3, 15, 4)
        for m in ("t1fsce", "t2"):
            add_image(case, m, 100 + 50 * blob(shape, center, (6, 5, 2)))
        for k, s in enumerate(sets):
            lab = add_label(case, blob(shape, center, (3 + k, 4, 2)), source="prediction", prediction_set=s)
            lab.run = run
            lab.save()
    return create_study(dataset=dataset, prediction_sets=sets, title="Which contour is better?", readers=[reader],
                        open_now=True, seed=99, allow_tie=True, ask_confidence=True, every_pair_each_case=True)


def forbidden(study):
    words = [*SET_NAMES, *DESCRIPTIONS, str(RUN_PK), *(str(p) for p in SET_PKS)]
    words += [a.name for a in study.arms.all()] + [str(a.pk) for a in study.arms.all()]
    assert all(a.pk > ARM_PK_BASE for a in study.arms.all())
    return [w.encode() for w in words]


def walk_study(client, study):
    """Fetch what the reader page fetches, in order. Returns [(url, response, body bytes)]."""
    fetched = []

    def get(url, **kw):
        r = client.get(url, **kw)
        body = b"".join(r.streaming_content) if r.streaming else r.content
        fetched.append((url, r, body))
        return r, body

    get(reverse("evaluation:my_studies"))
    r, _ = get(reverse("evaluation:study_start", args=[study.pk]))
    r, html = get(r.url)
    for path in re.findall(rb'(?:src|href)="(/static/[^"]+)"', html):
        get(path.decode())
    for path in ("/static/js/viewer.js", "/static/js/reader_outbox.js", "/static/niivue/index.js"):
        get(path)
    start = html.index(b'type="application/json">') + len(b'type="application/json">')
    payload = json.loads(html[start:html.index(b"</script>", start)])["item"]
    configs = []
    while payload:
        configs.append(payload)
        viewer = payload["viewer"]
        for url in [*viewer["baseUrls"].values(), *(o["url"] for o in viewer["overlays"])]:
            get(url)
        body = json.dumps({"choice": "left", "confidence": 3, "time_ms": 1000})
        r = client.post(payload["urls"]["vote"], body, content_type="application/json")
        assert r.status_code == 200, r.content
        fetched.append((payload["urls"]["vote"], r, r.content))
        payload = get(payload["next"]["config"])[0].json() if payload["next"] else None
    get(reverse("evaluation:reader_done", args=[study.pk]))
    get(reverse("evaluation:reader_review", args=[study.pk]))
    return fetched, configs


def test_nothing_a_reader_fetches_identifies_an_arm(client_for, reader, study):
    fetched, configs = walk_study(client_for(reader), study)
    assert len(configs) == study.assignments.get().items.count() == 18  # 6 cases x 3 pairs
    words = forbidden(study)
    volumes = 0
    for url, r, body in fetched:
        assert r.status_code in (200, 302), (url, r.status_code)
        assert "Content-Disposition" not in r.headers, url
        if not url.startswith("/static/"):  # static files are the same for everyone; their ETag is harmless
            assert "ETag" not in r.headers, url
        blobs = [body, url.encode(), *(f"{k}: {v}".encode() for k, v in r.headers.items())]
        if "/studies/v/" in url:
            volumes += 1
            raw = gzip.decompress(body)
            blobs.append(raw)
            hdr = nib.Nifti1Header.from_fileobj(io.BytesIO(raw))
            for field in ("descrip", "aux_file", "intent_name", "db_name"):
                assert bytes(hdr[field]).strip(b"\x00 ") == b"", (url, field)
            assert "private" in r.headers["Cache-Control"] and "max-age" in r.headers["Cache-Control"]
        for b in blobs:
            for w in words:
                assert w not in b, (url, w)
    assert volumes == 18 * 4

    # Volume URLs are opaque per (item, side): no path segment is shared between two items, and the left
    # and right URLs of an item differ. The same arm on the same side in many items never repeats a token.
    seen = {}
    for cfg in configs:
        v = cfg["viewer"]
        urls = [o["url"] for o in v["overlays"]] + list(v["baseUrls"].values())
        assert len(set(urls)) == len(urls)
        segments = {s for u in urls for s in urlparse(u).path.split("/") if s not in ("", "studies", "v")}
        for s in segments:
            assert seen.setdefault(s, cfg["position"]) == cfg["position"], f"segment {s} shared by items"
        # Both sides look alike apart from their URL.
        left, right = ({k: x for k, x in o.items() if k != "url"} for o in v["overlays"])
        assert left == right
        assert not [k for k in _keys(cfg) if re.search(r"arm|prediction|run|set_?id", k, re.I)]


def _keys(obj):
    if isinstance(obj, dict):
        for k, v in obj.items():
            yield k
            yield from _keys(v)
    elif isinstance(obj, list):
        for v in obj:
            yield from _keys(v)


def test_same_arm_mask_gets_different_urls_in_different_items(client_for, reader, study):
    """Three arms, every pair on every case: each arm's mask of a case appears in two items, never under
    the same URL; and the volumes' bytes depend only on the mask, not on the arm."""
    from evaluation.volumes import volume_key

    items = list(study.assignments.get().items.select_related("arm_left", "arm_right", "study_case"))
    by_mask = {}
    for it in items:
        for side in ("left", "right"):
            by_mask.setdefault((it.study_case_id, it.arm_for(side).pk), []).append(volume_key(it, side))
    assert all(len(keys) == 2 and len(set(keys)) == 2 for keys in by_mask.values())
