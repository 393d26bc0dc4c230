"""What the run pages of U-Net training show (context for ``pipeline/run_comparison.html`` and
``pipeline/run_training.html``)."""

from pipeline.unet.charts import CHART_METRICS, dice_box_figure


def comparison_context(run):
    arms = list(run.arms_runs.select_related("prediction_set").order_by("id"))
    rows = {}
    for arm in arms:
        for m in arm.case_metrics.select_related("case"):
            rows.setdefault((m.case.external_id, m.case.pk), {})[(arm.arm_name, m.reference)] = m.metrics
    references = [ref for ref in ("truth", "expert") if any(ref == r for row in rows.values() for _, r in row)]
    columns = [(arm.arm_name, ref) for arm in arms for ref in references]
    figure = dice_box_figure([(f"{name} vs {ref}", [row[(name, ref)]["dice"] for row in rows.values()
                                                    if (name, ref) in row]) for name, ref in columns])
    table = [{"case": case, "case_pk": pk, "cells": [(row.get(column) or {}).get("dice") for column in columns]}
             for (case, pk), row in sorted(rows.items())]
    sets = [arm.prediction_set.name for arm in arms if arm.prediction_set_id]
    return {"arms": arms, "references": references, "result_rows": table, "box_figure": figure,
            "arm_columns": columns, "prediction_set_names": sets, "chart_metrics": CHART_METRICS}


def training_context(run):
    return {"chart_metrics": CHART_METRICS}
