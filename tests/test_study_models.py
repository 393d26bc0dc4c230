"""Reader-study design and rules: seeded plans, balance, constraints, votes and their history."""

from collections import Counter

import numpy as np
import pytest
from django.db import IntegrityError, transaction

from evaluation.design import derive_seed, plan_items
from evaluation.models import Item, Vote, VoteRevision
from evaluation.services import StudyError, assign_readers, create_study, record_vote, set_pairs, set_status
from evaluation.volumes import focus_of
from tests.factories import add_label, blob, make_dataset, make_study, make_user

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("media")]



# --- the pure design --------------------------------------------------------------------------------------
def test_two_readers_fifty_cases_sides_balanced_orders_differ_and_reproduce():
    cases = [f"case{i:03d}" for i in range(50)]
    plans = {r: plan_items(cases, [("expert", "ai")], derive_seed(1234, r)) for r in ("ann", "bob")}
    for plan in plans.values():
        assert sorted(p.case for p in plan) == cases  # every case exactly once
        left = Counter(p.left for p in plan)
        assert abs(left["expert"] - 25) <= 25 * 0.15 and abs(left["ai"] - 25) <= 25 * 0.15
    both = Counter(p.left for plan in plans.values() for p in plan)
    assert both["expert"] == both["ai"] == 50  # even count per reader: exactly half on each side
    assert [p.case for p in plans["ann"]] != [p.case for p in plans["bob"]]
    # Reproducible from the study seed alone; a different study seed gives another order.
    assert plan_items(cases, [("expert", "ai")], derive_seed(1234, "ann")) == plans["ann"]
    assert [p.case for p in plan_items(cases, [("expert", "ai")], derive_seed(1235, "ann"))] != \
        [p.case for p in plans["ann"]]


def test_three_arms_pairs_balanced_across_cases_and_sides_per_pair():
    cases, pairs = list(range(30)), [("a", "b"), ("a", "c"), ("b", "c")]
    plan = plan_items(cases, pairs, seed=5)
    per_pair = Counter(frozenset((p.left, p.right)) for p in plan)
    assert sorted(per_pair.values()) == [10, 10, 10]
    for pair in pairs:
        shown = [p for p in plan if {p.left, p.right} == set(pair)]
        assert Counter(p.left for p in shown)[pair[0]] == 5
    every = plan_items(cases, pairs, seed=5, every_pair=True)
    assert len(every) == 90 and len({(p.case, frozenset((p.left, p.right))) for p in every}) == 90


@pytest.mark.parametrize("cases,pairs,match", [
    ([], [("a", "b")], "at least one case"), ([1, 1], [("a", "b")], "duplicates"),
    ([1], [], "at least one pair"), ([1], [("a", "a")], "two different arms"),
    ([1], [("a", "b"), ("b", "a")], "duplicates"),
])
def test_plan_refuses_bad_input(cases, pairs, match):
    with pytest.raises(ValueError, match=match):
        plan_items(cases, pairs, seed=0)


def test_focus_is_the_slice_with_the_largest_union():
    a = np.zeros((10, 12, 6), np.uint8)
    b = np.zeros_like(a)
    a[2:4, 2:4, 1] = 1            # 4 voxels on slice 1
    b[5:8, 5:8, 4] = 1            # 9 voxels on slice 4
    a[0:2, 0:2, 4] = 1            # union on slice 4 = 13
    affine = np.diag([2.0, 2.0, 3.0, 1.0])
    f = focus_of([a, b], affine)
    assert f["voxel"][2] == 4
    ii, jj = np.nonzero((a | b)[:, :, 4])
    assert f["voxel"][:2] == [round(ii.mean(), 3), round(jj.mean(), 3)]
    assert f["mm"] == [round(2 * ii.mean(), 3), round(2 * jj.mean(), 3), 12.0]
    assert focus_of([np.zeros_like(a)] * 2, affine)["voxel"] == [4.5, 5.5, 2.5]


# --- studies in the database ------------------------------------------------------------------------------
def test_create_study_uses_only_cases_every_arm_covers():
    dataset = make_dataset(n_cases=4)
    sets = list(dataset.prediction_sets.order_by("pk"))
    lonely = dataset.cases.order_by("external_id").last()
    lonely.labels.filter(prediction_set=sets[1]).delete()
    reader = make_user("r1", "reader")
    study = create_study(dataset=dataset, prediction_sets=sets, title="t", readers=[reader], seed=3)
    assert study.study_cases.count() == 3 and not study.study_cases.filter(case=lonely).exists()
    items = list(study.assignments.get().items.order_by("position"))
    assert [i.position for i in items] == [1, 2, 3]
    assert all(i.arm_left != i.arm_right for i in items)
    assert study.status == "draft"


def test_create_study_refuses_bad_arms_and_non_readers():
    dataset = make_dataset(n_cases=2)
    other = make_dataset(name="other", n_cases=1, prediction_sets=("x",))
    sets = list(dataset.prediction_sets.all())
    with pytest.raises(StudyError, match="at least two arms"):
        create_study(dataset=dataset, prediction_sets=sets[:1], title="t")
    with pytest.raises(StudyError, match="belongs to dataset 'other'"):
        create_study(dataset=dataset, prediction_sets=[sets[0], other.prediction_sets.get()], title="t")
    with pytest.raises(StudyError, match="not in the Readers group"):
        create_study(dataset=dataset, prediction_sets=sets, title="t", readers=[make_user("c", "coordinator")])


def test_item_plan_matches_the_design_from_the_stored_seed():
    reader = make_user("ann", "reader")
    study = make_study(n_cases=6, readers=[reader])
    assignment = study.assignments.get()
    assert assignment.seed == derive_seed(study.seed, "ann")
    sc = {s.case.external_id: s for s in study.study_cases.all()}
    pairs = [(a.pk, b.pk) for a, b in study.arm_pairs()]
    expected = plan_items(sorted(sc), pairs, assignment.seed)
    got = [(i.study_case.case.external_id, i.arm_left_id, i.arm_right_id)
           for i in assignment.items.order_by("position")]
    assert got == [(p.case, p.left, p.right) for p in expected]


def test_three_arm_study_with_chosen_pairs():
    reader = make_user("ann", "reader")
    study = make_study(n_cases=6, readers=[reader], prediction_sets=("a", "b", "c"), open_now=False)
    arms = list(study.arms.order_by("pk"))
    assert len(study.arm_pairs()) == 3
    set_pairs(study, [(arms[0].pk, arms[1].pk), (arms[0].pk, arms[2].pk)])
    shown = Counter(frozenset((i.arm_left.name, i.arm_right.name)) for i in Item.objects.all())
    assert shown == {frozenset("ab"): 3, frozenset("ac"): 3}
    with pytest.raises(StudyError, match="two arms of this study"):
        set_pairs(study, [(arms[0].pk, 99999)])


def _vote(item, user, choice="left", **kw):
    return record_vote(item, user, {"choice": choice, "confidence": kw.get("confidence"),
                                    "comment": kw.get("comment", ""), "time_ms": kw.get("time_ms", 1000)})


def test_votes_one_per_item_idempotent_and_history_when_changed():
    reader = make_user("ann", "reader")
    study = make_study(n_cases=3, readers=[reader], allow_revisit=True)
    item = study.assignments.get().items.get(position=1)
    first = _vote(item, reader, "left", time_ms=1200)
    assert first.outcome == "created" and first.vote.arm == item.arm_left
    assert _vote(item, reader, "left", time_ms=900).outcome == "unchanged"  # double submit
    changed = _vote(item, reader, "right", time_ms=800)
    assert changed.outcome == "changed" and changed.vote.arm == item.arm_right and changed.vote.revision == 2
    assert changed.vote.time_ms == 2000
    assert Vote.objects.count() == 1
    old = VoteRevision.objects.get()
    assert (old.choice, old.arm, old.revision, old.time_ms) == ("left", item.arm_left, 1, 1200)
    with pytest.raises(ValueError, match="append-only"):
        old.save()
    with pytest.raises(ValueError, match="append-only"):
        old.delete()
    with pytest.raises(IntegrityError), transaction.atomic():
        Vote.objects.create(item=item, choice="left", arm=item.arm_left)


def test_vote_rules_tie_revisit_closed_and_owner():
    reader, other = make_user("ann", "reader"), make_user("bob", "reader")
    study = make_study(n_cases=2, readers=[reader, other])
    item = study.assignments.get(reader=reader).items.get(position=1)
    with pytest.raises(StudyError, match="No preference"):
        _vote(item, reader, "none")
    with pytest.raises(StudyError, match="not assigned to you") as exc:
        _vote(item, other, "left")
    assert exc.value.status == 404
    _vote(item, reader, "left")
    with pytest.raises(StudyError, match="does not allow changing") as exc:
        _vote(item, reader, "right")
    assert exc.value.status == 409
    set_status(study, "closed")
    with pytest.raises(StudyError, match="closed") as exc:
        _vote(study.assignments.get(reader=reader).items.get(position=2), reader, "left")
    assert exc.value.status == 409


def test_db_constraints_on_votes_and_items():
    reader = make_user("ann", "reader")
    study = make_study(n_cases=2, readers=[reader])
    item = study.assignments.get().items.get(position=1)
    with pytest.raises(IntegrityError), transaction.atomic():
        Vote.objects.create(item=item, choice="left", arm=None)  # a side choice must name its arm
    with pytest.raises(IntegrityError), transaction.atomic():
        Vote.objects.create(item=item, choice="left", arm=item.arm_left, confidence=6)
    with pytest.raises(IntegrityError), transaction.atomic():
        Item.objects.filter(pk=item.pk).update(arm_right=item.arm_left)


def test_open_needs_readers_and_readers_join_later():
    study = make_study(n_cases=2, readers=[], open_now=False)
    with pytest.raises(StudyError, match="Assign at least one reader"):
        set_status(study, "open")
    made = assign_readers(study, [make_user("ann", "reader")])
    assert len(made) == 1 and made[0].items.count() == 2
    assert assign_readers(study, [made[0].reader]) == []  # assigning twice changes nothing
    set_status(study, "open")
    assert study.status == "open" and study.opened_at is not None


def test_focus_cached_on_item_from_both_overlays():
    from evaluation.volumes import item_focus

    reader = make_user("ann", "reader")
    study = make_study(n_cases=1, readers=[reader])
    item = study.assignments.get().items.get()
    case = item.study_case.case
    mask = blob((32, 32, 8), (10, 10, 6), (3, 3, 1))
    case.labels.filter(prediction_set=item.arm_left.prediction_set).delete()
    add_label(case, mask, source="prediction", prediction_set=item.arm_left.prediction_set)
    focus = item_focus(item)
    right = item.study_case.prediction_for(item.arm_right)
    from pipeline.core.io.nifti import load_volume

    union = (mask > 0) | (load_volume(right.path, kind="label").data > 0)
    assert focus["voxel"][2] == int(np.argmax(union.sum(axis=(0, 1))))
    assert Item.objects.get(pk=item.pk).focus == focus
