"""Reader and coordinator pages of reader studies, the vote endpoint, and ``manage.py create_study``."""

import json

import pytest
from django.core.management import CommandError, call_command
from django.urls import reverse

from evaluation.models import Item, Study, Vote
from tests.factories import make_study, make_user

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("media")]



def post_vote(client, study, position, **body):
    url = reverse("evaluation:reader_vote", args=[study.pk, position])
    return client.post(url, json.dumps(body), content_type="application/json")


def config_of(response):
    html = response.content.decode()
    start = html.index('<script id="reader-config" type="application/json">') + 51
    return json.loads(html[start:html.index("</script>", start)])


def test_reader_flow_resume_and_end(client_for, reader):
    study = make_study(n_cases=3, readers=[reader], ask_confidence=True)
    c = client_for(reader)
    page = c.get(reverse("evaluation:my_studies")).content.decode()
    assert study.reader_title in page and study.title not in page  # readers see the neutral title only
    r = c.get(reverse("evaluation:study_start", args=[study.pk]))
    assert r.url == reverse("evaluation:reader_item", args=[study.pk, 1])
    page = c.get(r.url)
    cfg = config_of(page)
    assert cfg["item"]["position"] == 1 and cfg["item"]["total"] == 3 and cfg["item"]["next"]["position"] == 2
    assert len(cfg["item"]["viewer"]["overlays"]) == 2 and cfg["item"]["viewer"]["focusMm"]
    assert post_vote(c, study, 1, choice="left", time_ms=50).status_code == 400  # confidence required
    r = post_vote(c, study, 1, choice="left", confidence=4, time_ms=1500)
    assert r.status_code == 200 and r.json()["progress"] == {"done": 1, "total": 3}
    assert post_vote(c, study, 1, choice="left", confidence=4, time_ms=1500).json()["outcome"] == "unchanged"
    # Resume after a new login: the first unanswered item; the answered one is not shown again.
    c2 = client_for(reader)
    assert c2.get(reverse("evaluation:study_start", args=[study.pk])).url.endswith("/read/2/")
    assert c2.get(reverse("evaluation:reader_item", args=[study.pk, 1])).status_code == 302
    for pos in (2, 3):
        assert post_vote(c2, study, pos, choice="right", confidence=2, time_ms=10).status_code == 200
    assert c2.get(reverse("evaluation:study_start", args=[study.pk])).url == reverse("evaluation:reader_done",
                                                                                     args=[study.pk])
    done = c2.get(reverse("evaluation:reader_done", args=[study.pk])).content.decode()
    assert "study complete" in done and "3 / 3" in done
    votes = Vote.objects.filter(item__assignment__reader=reader)
    assert votes.count() == 3 and all(v.arm == v.item.arm_for(v.choice) for v in votes)
    assert votes.get(item__position=1).time_ms == 1500


def test_vote_validation_and_closed_study(client_for, reader):
    study = make_study(n_cases=2, readers=[reader])
    c = client_for(reader)
    bad = [{"choice": "none"}, {"choice": "middle"}, {}, {"choice": "left", "time_ms": -5},
           {"choice": "left", "comment": "not asked"}]
    for body in bad:
        r = post_vote(c, study, 1, **body)
        assert r.status_code == 400 and r.json()["error"], body
    r = c.post(reverse("evaluation:reader_vote", args=[study.pk, 1]), "[1]", content_type="application/json")
    assert r.status_code == 400
    assert post_vote(c, study, 9, choice="left").status_code == 404
    study.status = Study.Status.CLOSED
    study.save()
    r = post_vote(c, study, 1, choice="left")
    assert r.status_code == 409 and "closed" in r.json()["error"] and r.json()["closed"] is True
    assert "This study is closed" in c.get(reverse("evaluation:reader_item", args=[study.pk, 1])).content.decode()
    assert not Vote.objects.exists()


def test_revisit_allowed_keeps_history_and_review_page(client_for, reader):
    study = make_study(n_cases=2, readers=[reader], allow_revisit=True, allow_tie=True)
    c = client_for(reader)
    assert post_vote(c, study, 1, choice="left").status_code == 200
    assert c.get(reverse("evaluation:reader_item", args=[study.pk, 1])).status_code == 200  # may come back
    r = post_vote(c, study, 1, choice="none")
    assert r.json()["outcome"] == "changed"
    vote = Vote.objects.get()
    assert vote.arm is None and vote.revisions.get().choice == "left"
    review = c.get(reverse("evaluation:reader_review", args=[study.pk])).content.decode()
    assert "No preference" in review and "not answered" in review


def test_readers_are_confined_to_their_own_items(client_for, reader, reader2, coordinator):
    study = make_study(n_cases=2, readers=[reader])
    other_study = make_study(n_cases=2, readers=[reader2], name="second")
    c = client_for(reader)
    item2 = other_study.assignments.get().items.get(position=1)
    cfg2 = config_of(client_for(reader2).get(reverse("evaluation:reader_item", args=[other_study.pk, 1])))
    # Another reader's study, its items, its JSON, its volumes, its votes: all 404 for this reader.
    for url in [reverse("evaluation:study_start", args=[other_study.pk]),
                reverse("evaluation:reader_item", args=[other_study.pk, 1]),
                reverse("evaluation:reader_item_config", args=[other_study.pk, 1]),
                cfg2["item"]["viewer"]["overlays"][0]["url"], cfg2["item"]["viewer"]["base"]["url"]]:
        assert c.get(url).status_code == 404, url
    assert post_vote(c, other_study, 1, choice="left").status_code == 404
    # Coordinator pages and results are refused to readers.
    for url in [reverse("evaluation:study_detail", args=[study.pk]), reverse("evaluation:study_list")]:
        assert c.get(url).status_code == 403
    # A volume key of one item does not open another item's volume.
    own = config_of(c.get(reverse("evaluation:reader_item", args=[study.pk, 1])))["item"]["viewer"]
    key = own["overlays"][0]["url"].rstrip("/").split("/")[-1]
    assert c.get(reverse("evaluation:volume", args=[item2.token, key])).status_code == 404
    assert c.get(own["overlays"][0]["url"]).status_code == 200
    base = c.get(own["base"]["url"])  # the image under both overlays: 8-bit, a quarter of float32 or less
    import gzip

    import numpy as np

    raw = gzip.decompress(base.content)
    assert np.frombuffer(raw[70:72], np.int16)[0] == 2  # NIfTI datatype code 2: uint8
    assert len(base.content) <= 32 * 32 * 8 * 4 / 4
    # Coordinators can fetch volumes (preview) but cannot vote.
    cc = client_for(coordinator)
    assert cc.get(own["overlays"][0]["url"]).status_code == 200
    assert post_vote(cc, study, 1, choice="left").status_code == 403
    # A draft study is invisible to its reader.
    study.status = Study.Status.DRAFT
    study.save()
    assert c.get(reverse("evaluation:study_start", args=[study.pk])).status_code == 404
    assert c.get(own["overlays"][0]["url"]).status_code == 404


def test_coordinator_creates_assigns_previews_opens_and_sees_progress(client_for, coordinator, reader, reader2):
    from tests.factories import make_dataset

    dataset = make_dataset(n_cases=3)
    sets = list(dataset.prediction_sets.order_by("pk"))
    c = client_for(coordinator)
    assert c.get(reverse("evaluation:study_create")).status_code == 200
    r = c.post(reverse("evaluation:study_create"), {
        "title": "Expert vs AI", "dataset": dataset.pk, "prediction_sets": [sets[0].pk],
        "readers": [reader.pk]})
    assert r.status_code == 200 and "at least two" in r.content.decode()
    # at the top of the long form too, linked to the field (beside it, it is far below where the page opens)
    summary = r.content.decode().split('class="form-error-summary', 1)[1].split("</div>", 1)[0]
    assert '<a href="#id_prediction_sets">Arms (prediction sets)</a>: Choose at least two' in summary
    assert 'id="id_prediction_sets"' in r.content.decode()  # where the link goes
    r = c.post(reverse("evaluation:study_create"), {
        "title": "Expert vs AI", "dataset": dataset.pk, "prediction_sets": [s.pk for s in sets],
        "readers": [reader.pk], "allow_tie": "on", "seed": "11"})
    study = Study.objects.get()
    assert r.url == study.get_absolute_url() and study.seed == 11 and study.allow_tie
    # Preview: the coordinator sees exactly the first reader's item 1, with voting disabled.
    r = c.get(reverse("evaluation:study_preview", args=[study.pk]))
    assignment = study.assignments.get(reader=reader)
    assert r.url == reverse("evaluation:preview_item", args=[study.pk, assignment.pk, 1])
    preview = c.get(r.url)
    assert preview.status_code == 200 and config_of(preview)["preview"] is True
    assert c.post(reverse("evaluation:study_readers", args=[study.pk]), {"readers": [reader2.pk]}).status_code == 302
    assert study.assignments.count() == 2
    c.post(reverse("evaluation:study_status", args=[study.pk]), {"status": "open"})
    study.refresh_from_db()
    assert study.status == "open"
    rc = client_for(reader)
    post_vote(rc, study, 1, choice="left", time_ms=3000)
    post_vote(rc, study, 2, choice="right", time_ms=1000)
    detail = c.get(study.get_absolute_url()).content.decode()
    assert "2 / 3" in detail and "2.0 s" in detail  # done/total and median time, in seconds
    assert sets[0].name in detail and sets[1].name in detail  # arm names: coordinators only
    # While open the page shows progress only; the answers need an explicit, recorded unblinding.
    assert 'id="votes-table"' not in detail and 'id="unblind-now"' in detail
    assert c.post(reverse("evaluation:study_unblind", args=[study.pk])).status_code == 302
    study.refresh_from_db()
    assert study.unblinded_by == coordinator and study.unblinded_at is not None
    detail = c.get(study.get_absolute_url()).content.decode()
    assert 'id="votes-table"' in detail and f"Unblinded while open by {coordinator.username}" in detail
    c.post(reverse("evaluation:study_status", args=[study.pk]), {"status": "closed"})
    study.refresh_from_db()
    assert study.status == "closed"


def test_create_study_command(reader, reader2):
    from tests.factories import make_dataset

    make_dataset(n_cases=3, prediction_sets=("unet-expert", "unet-ai", "third"))
    with pytest.raises(CommandError, match="Unknown dataset 'nope'"):
        call_command("create_study", dataset="nope", arms="a,b", title="t")
    with pytest.raises(CommandError, match="Unknown prediction set 'zzz'"):
        call_command("create_study", dataset="demo", arms="unet-expert,zzz", title="t")
    with pytest.raises(CommandError, match="Unknown reader 'ghost'"):
        call_command("create_study", dataset="demo", arms="unet-expert,unet-ai", readers="ghost", title="t")
    make_user("boss2", "coordinator")
    with pytest.raises(CommandError, match="not an active member of the Readers group"):
        call_command("create_study", dataset="demo", arms="unet-expert,unet-ai", readers="boss2", title="t")
    call_command("create_study", "--dataset", "demo", "--arms", "unet-expert,unet-ai", "--readers",
                 "reader1,reader2", "--title", "CLI study", "--seed", "42", "--allow-tie")
    study = Study.objects.get(title="CLI study")
    assert study.status == "open" and study.seed == 42 and study.allow_tie
    assert sorted(study.arms.values_list("name", flat=True)) == ["unet-ai", "unet-expert"]
    assert study.assignments.count() == 2 and all(a.items.count() == 3 for a in study.assignments.all())
    call_command("create_study", "--dataset", "demo", "--arms", "unet-expert,unet-ai,third", "--readers",
                 "reader1", "--title", "Draft", "--draft")
    assert Study.objects.get(title="Draft").status == "draft"
    with pytest.raises(CommandError, match="--primary must name two of the study's arms"):
        call_command("create_study", "--dataset", "demo", "--arms", "unet-expert,unet-ai", "--title", "P",
                     "--primary", "unet-ai,third")
    call_command("create_study", "--dataset", "demo", "--arms", "unet-expert,unet-ai", "--readers", "reader1",
                 "--title", "Planned", "--primary", "unet-ai,unet-expert", "--primary-method", "bootstrap",
                 "--ties", "against", "--alpha", "0.01", "--reread-share", "0.5", "--graded")
    planned = Study.objects.get(title="Planned")
    assert planned.analysis_plan().describe().startswith("share of votes preferring unet-ai over unet-expert; ties "
                                                        "count against the arm")
    assert planned.graded and planned.reread_share == 0.5 and planned.alpha == 0.01


def test_coordinator_removes_a_reader_who_has_not_answered(client_for, coordinator, reader, reader2):
    from tests.factories import make_dataset

    dataset = make_dataset(n_cases=3)
    c = client_for(coordinator)
    c.post(reverse("evaluation:study_create"), {
        "title": "Removal", "dataset": dataset.pk, "prediction_sets": [s.pk for s in dataset.prediction_sets.all()],
        "readers": [reader.pk, reader2.pk]})
    study = Study.objects.get()
    first, second = study.assignments.get(reader=reader), study.assignments.get(reader=reader2)

    def remove(assignment):
        return c.post(reverse("evaluation:study_reader_remove", args=[study.pk, assignment.pk]), follow=True)

    detail = c.get(study.get_absolute_url()).content.decode()
    assert detail.count('data-role="remove-reader"') == 2
    c.post(reverse("evaluation:study_status", args=[study.pk]), {"status": "open"})
    post_vote(client_for(reader), study, 1, choice="left", time_ms=2000)
    # a reader with a vote stays, and so do the vote and every item
    r = remove(first)
    assert f"{reader.username} has answered 1 item(s) and cannot be removed" in r.content.decode()
    assert study.assignments.filter(pk=first.pk).exists() and Vote.objects.count() == 1
    assert first.items.count() == 3
    # a reader with no answer goes, with their planned items; they no longer see the study
    r = remove(second)
    assert f"{reader2.username} was removed from the study." in r.content.decode()
    assert not study.assignments.filter(pk=second.pk).exists()
    assert not Item.objects.filter(assignment_id=second.pk).exists()
    assert client_for(reader2).get(reverse("evaluation:study_start", args=[study.pk])).status_code == 404
    assert c.get(study.get_absolute_url()).content.decode().count('data-role="remove-reader"') == 0
    # an assignment asked for under another study's address: 404
    assert c.post(reverse("evaluation:study_reader_remove", args=[study.pk + 1, first.pk])).status_code == 404


def test_the_only_reader_of_an_open_study_is_not_removed(reader, reader2):
    from evaluation.services import StudyError, remove_reader

    study = make_study(n_cases=2, readers=[reader])
    assert study.status == "open"
    (assignment,) = study.assignments.all()
    with pytest.raises(StudyError, match=f"{reader.username} is the only reader of this open study"):
        remove_reader(study, assignment)
    assert study.assignments.count() == 1 and assignment.items.count() == 2


def test_the_error_summary_lists_every_error_of_a_form():
    """Non-field errors (a StudyError) and hidden fields' (the planner's planned_power) too: the summary at the
    top of the form is never an empty 'Please correct:'."""
    from django import forms
    from django.template.loader import render_to_string

    class Form(forms.Form):
        name = forms.CharField()
        token = forms.CharField(widget=forms.HiddenInput)

        def clean(self):
            raise forms.ValidationError("No case has a prediction in every chosen set.")

    summary = render_to_string("includes/form_fields.html", {"form": Form({"name": "", "token": ""})}).split(
        "</div>", 1)[0]
    assert "<li>No case has a prediction in every chosen set.</li>" in summary
    assert "<li>Token: This field is required.</li>" in summary
    assert '<li><a href="#id_name">Name</a>: This field is required.</li>' in summary


@pytest.mark.parametrize(("asks", "keeps_place"), [({"ask_confidence": True}, True), ({"ask_comment": True}, True),
                                                    ({"ask_confidence": False, "ask_comment": False}, False)])
def test_the_answer_row_keeps_room_for_a_follow_up_only_where_there_is_one(client_for, reader, asks, keeps_place):
    """Confidence or comment asked: the hidden row keeps its place (showing it moves nothing); neither asked: it
    takes no room from the viewers."""
    from tests.factories import make_study

    study = make_study(n_cases=2, readers=[reader], **asks)
    html = client_for(reader).get(reverse("evaluation:reader_item", args=[study.pk, 1])).content.decode()
    assert ('class="followup keeps-place"' in html) is keeps_place and 'id="followup" hidden' in html
