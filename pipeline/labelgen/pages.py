"""What the run pages of label generation show (context for ``pipeline/run_clustering.html`` and
``pipeline/run_refinement.html``)."""

from django.urls import reverse

from pipeline.labelgen.charts import qa_dice_figure


def clustering_context(run):
    maps = run.cluster_maps.select_related("case").order_by("case__external_id")
    return {"cluster_maps": [{"case": m.case.external_id, "split": m.case.split, "n_clusters": m.n_clusters,
                              "cluster_url": reverse("pipeline:cluster_volume", args=[m.pk]),
                              "images": [{"name": img.modality, "url": reverse("pipeline:image_volume", args=[img.pk])}
                                         for img in m.case.images.order_by("id")]}
                             for m in maps]}


def refinement_context(run):
    rows = [{"case": qa.case, "label": qa.label, "n_lesions": qa.n_lesions, "vs_expert": qa.vs_expert,
             "vs_truth": qa.vs_truth, "expert_vs_truth": qa.expert_vs_truth, "per_rater": qa.per_rater}
            for qa in run.qa.select_related("case", "label").order_by("case__external_id")]
    series = [("AI vs expert (combined)", [r["vs_expert"].get("dice") for r in rows]),
              ("AI vs truth", [(r["vs_truth"] or {}).get("dice") for r in rows]),
              ("expert (combined) vs truth", [(r["expert_vs_truth"] or {}).get("dice") for r in rows])]
    cases = [r["case"].external_id for r in rows]
    return {"qa_rows": rows, "qa_figure": qa_dice_figure(cases, series),
            "qa_means": [(name, _mean(values)) for name, values in series]}


def _mean(values):
    values = [v for v in values if v is not None]
    return sum(values) / len(values) if values else None
