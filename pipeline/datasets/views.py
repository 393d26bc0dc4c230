"""Coordinator pages for datasets and cases, and the authenticated volume downloads they use."""

from django.core.paginator import Paginator
from django.db.models import Count, Prefetch
from django.http import HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.views.decorators.http import require_POST

from accounts.roles import capability_required
from pipeline.datasets.forms import DatasetForm, LabelReviewForm
from pipeline.datasets.viewer import viewer_bytes
from pipeline.datasets.viewer_config import overlay_spec, viewer_config
from pipeline.models import Case, Dataset, Image, Label

LABEL_COLOURS = {"truth": "green", "expert": "red", "ai": "blue", "prediction": "violet"}


@capability_required("coordinate")
def dataset_list(request):
    return render(request, "pipeline/dataset_list.html",
                  {"datasets": Dataset.objects.with_split_counts(), "form": DatasetForm()})


@require_POST
@capability_required("coordinate")
def dataset_create(request):
    form = DatasetForm(request.POST)
    if form.is_valid():
        dataset = form.save(commit=False)
        dataset.created_by = request.user
        dataset.save()
        return redirect("pipeline:dataset_upload", dataset.pk)
    return render(request, "pipeline/dataset_list.html",
                  {"datasets": Dataset.objects.with_split_counts(), "form": form}, status=400)


@capability_required("coordinate")
def dataset_detail(request, pk):
    dataset = get_object_or_404(Dataset, pk=pk)
    cases = (Case.objects.filter(dataset=dataset).order_by("split", "external_id")
             .prefetch_related(Prefetch("images", queryset=Image.objects.order_by("id")),
                               Prefetch("labels", queryset=Label.objects.select_related("prediction_set")),
                               "annotation_items"))
    split = request.GET.get("split")
    if split in Case.Split.values:
        cases = cases.filter(split=split)
    page = Paginator(cases, 50).get_page(request.GET.get("page"))
    rows = [case_row(case) for case in page.object_list]
    return render(request, "pipeline/dataset_detail.html", {
        "dataset": dataset, "page": page, "rows": rows, "split": split, "splits": Case.Split.choices,
        "prediction_sets": dataset.prediction_sets.annotate(n=Count("labels")),
        "counts": dataset.split_counts(),
    })


def case_row(case):
    images = list(case.images.all())
    labels = list(case.labels.all())
    by_source = {}
    for label in labels:
        by_source.setdefault(label.get_source_display(), []).append(label)
    ai = [lab for lab in labels if lab.source == Label.Source.AI and not lab.corrected_from_id]
    corrected = {lab.corrected_from_id for lab in labels if lab.corrected_from_id}
    expert = [lab.volume_ml for lab in labels if lab.source == Label.Source.EXPERT and not lab.is_sparse]
    inputs = [f"{lab.input} by {lab.rater or '?'}" for lab in labels if lab.source == Label.Source.EXPERT]
    return {
        "case": case, "modalities": [img.modality for img in images],
        "labels": {src: len(labs) for src, labs in sorted(by_source.items())},
        "shape": images[0].shape_text() if images else "—", "spacing": images[0].spacing_text() if images else "—",
        "expert_ml": sum(expert) / len(expert) if expert else None,
        "truth_ml": next((lab.volume_ml for lab in labels if lab.source == Label.Source.TRUTH), None),
        "ai_review": ", ".join(f"{lab.rater + ': ' if lab.rater else ''}"
                               f"{'corrected' if lab.pk in corrected else lab.get_review_display().lower()}"
                               for lab in ai),
        "inputs": sorted(set(inputs)),
        "seconds": sum(i.seconds_spent for i in case.annotation_items.all()),
    }


def shown_at_first(labels):
    """The pks of the labels a case page shows at first: its AI label beside expert outlines, two in all, as a
    coordinator compares them. A sparse input (a box, strokes) is left off: a box covered the tumour."""
    ai = [lab.pk for lab in labels if lab.source == Label.Source.AI][:1]
    outlines = [lab.pk for lab in labels if lab.source == Label.Source.EXPERT and not lab.is_sparse]
    return set((ai + outlines)[:2])


@capability_required("coordinate")
def case_detail(request, pk):
    case = get_object_or_404(Case.objects.select_related("dataset"), pk=pk)
    images = list(case.images.order_by("id"))
    labels = list(case.labels.select_related("prediction_set").order_by("source", "rater", "modality"))
    image_urls = {img.modality: reverse("pipeline:image_volume", args=[img.pk]) for img in images}
    label_urls = [reverse("pipeline:label_volume", args=[lab.pk]) for lab in labels]
    shown = shown_at_first(labels)
    for lab in labels:
        lab.shown = lab.pk in shown
    config = {
        # the shared viewer settings (window presets, layouts, NiiVue options), as the reader page has them
        "viewer": viewer_config(base_urls=image_urls) if images else None,
        "images": [{"id": img.pk, "name": img.modality, "url": image_urls[img.modality]} for img in images],
        "labels": [{"id": lab.pk, "name": lab.display_name, "source": lab.source, "url": url,
                    "overlay": overlay_spec(url, colormap=LABEL_COLOURS.get(lab.source, "red")),
                    "visible": lab.shown}
                   for lab, url in zip(labels, label_urls, strict=True)],
    }
    return render(request, "pipeline/case_detail.html", {
        "case": case, "images": images, "labels": labels, "viewer_config": config,
        "review_form": LabelReviewForm(),
    })


@require_POST
@capability_required("coordinate")
def label_review(request, pk):
    label = get_object_or_404(Label, pk=pk, source=Label.Source.AI)
    form = LabelReviewForm(request.POST)
    if form.is_valid():
        label.review = form.cleaned_data["review"]
        label.save(update_fields=["review"])
    return redirect(label.case)


def volume_response(blob, etag):
    response = HttpResponse(blob, content_type="application/gzip")
    response["Cache-Control"] = "private, max-age=86400"
    response["ETag"] = f'"{etag}"'
    response["X-Content-Type-Options"] = "nosniff"
    return response


def _if_none_match(request, etag):
    return request.headers.get("If-None-Match") == f'"{etag}"'


@capability_required("coordinate")
def image_volume(request, pk):
    image = get_object_or_404(Image, pk=pk)
    etag = f"img-{image.file.rsplit('/', 1)[-1][:24]}"
    if _if_none_match(request, etag):
        return HttpResponse(status=304)
    return volume_response(viewer_bytes(image, "image"), etag)


@capability_required("coordinate")
def label_volume(request, pk):
    label = get_object_or_404(Label, pk=pk)
    etag = f"lab-{label.file.rsplit('/', 1)[-1][:24]}"
    if _if_none_match(request, etag):
        return HttpResponse(status=304)
    return volume_response(viewer_bytes(label, "label"), etag)


