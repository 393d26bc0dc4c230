"""What the blinded reader page shows for one item (its JSON and page context), for the reader's own
views and the coordinator's preview alike. Blinded: no arm, set or run appears here."""

from django.middleware.csrf import get_token
from django.urls import reverse

from evaluation.services import counts
from evaluation.viewer_config import item_viewer_config


def item_modalities(item):
    """The item's modalities, the study's default first."""
    study = item.assignment.study
    mods = sorted(item.study_case.case.images.values_list("modality", flat=True))
    if study.default_modality in mods:
        mods.remove(study.default_modality)
        mods.insert(0, study.default_modality)
    return mods


def _total_and_next(assignment, position):
    """``(number of items, the first unanswered item after position (wrapping round) or None)``, in one query."""
    rows = list(assignment.items.order_by("position").values_list("position", "vote__id"))
    open_positions = [p for p, vote in rows if vote is None and p != position]
    after = [p for p in open_positions if p > position]
    return len(rows), (after or open_positions or [None])[0]


def item_urls(assignment, position, preview=False):
    study_pk = assignment.study_id
    if preview:
        args = [study_pk, assignment.pk, position]
        return {"page": reverse("evaluation:preview_item", args=args),
                "config": reverse("evaluation:preview_item_config", args=args), "vote": None}
    args = [study_pk, position]
    return {"page": reverse("evaluation:reader_item", args=args),
            "config": reverse("evaluation:reader_item_config", args=args),
            "vote": reverse("evaluation:reader_vote", args=args)}


def item_payload(item, *, preview=False):
    """Everything the page needs for one item; blinded (no arm, set or run appears here)."""
    assignment = item.assignment
    vote = getattr(item, "vote", None)
    total, nxt = _total_and_next(assignment, item.position)
    if preview:  # a coordinator walks through in order; nothing is answered in a preview
        nxt = item.position + 1 if item.position < total else None
    modalities = item_modalities(item)
    return {
        "position": item.position,
        "total": total,
        "answer": None if vote is None else {"choice": vote.choice, "confidence": vote.confidence,
                                             "grade": vote.grade, "comment": vote.comment},
        "urls": item_urls(assignment, item.position, preview),
        "next": None if nxt is None else {"position": nxt, **item_urls(assignment, nxt, preview)},
        "modalities": modalities,
        "viewer": item_viewer_config(item, modalities),
    }


def page_context(request, item, *, preview=False):
    assignment, study = item.assignment, item.assignment.study
    done, total = counts(assignment)
    if preview:
        done_url = review_url = resume_url = reverse("evaluation:study_detail", args=[study.pk])
    else:
        done_url = reverse("evaluation:reader_done", args=[study.pk])
        review_url = reverse("evaluation:reader_review", args=[study.pk])
        resume_url = reverse("evaluation:study_start", args=[study.pk])
    config = {
        "item": item_payload(item, preview=preview),
        "study": {"allowTie": study.allow_tie, "graded": study.graded, "askConfidence": study.ask_confidence,
                  "askComment": study.ask_comment, "allowRevisit": study.allow_revisit},
        "progress": {"done": done, "total": total},
        "urls": {"done": done_url, "review": review_url, "resume": resume_url},
        "preview": preview,
        "csrfToken": get_token(request),
        "storageKey": f"labelgen-outbox-{study.pk}-{request.user.pk}",
    }
    viewer = config["item"]["viewer"]
    # what the page's first draw needs, downloading while the page's code loads (the order of the config)
    preload = [viewer["base"]["url"], *(o["url"] for o in viewer["overlays"])]
    return {"study": study, "item": item, "config": config, "preview": preview, "done": done, "total": total,
            "preload": preload}
