"""The coordinator's side of annotation tasks: list, create, follow progress per radiologist and case."""

from django.contrib import messages
from django.db.models import Count, Q, Sum
from django.shortcuts import get_object_or_404, redirect, render

from accounts.roles import capability_required
from pipeline.annotation.forms import AnnotationTaskForm
from pipeline.annotation.services import AnnotationError, create_task
from pipeline.models import AnnotationItem, AnnotationTask


@capability_required("coordinate")
def task_list(request):
    form = AnnotationTaskForm(request.POST or None, initial={"dataset": request.GET.get("dataset")})
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        try:
            task = create_task(dataset=data["dataset"], name=data["name"], input=data["input"],
                               radiologists=data["radiologists"], cases=data["case_list"], created_by=request.user,
                               instructions=data["instructions"])
        except AnnotationError as exc:
            form.add_error(None, str(exc))
        else:
            messages.success(request, f"Task {task.name} created: {task.items.count()} case(s) to mark.")
            return redirect("pipeline:annotation_task_detail", task.pk)
    tasks = (AnnotationTask.objects.select_related("dataset")
             .annotate(n=Count("items"), finished=Count("items", filter=~Q(items__status="todo"))))
    return render(request, "pipeline/annotation/task_list.html", {"tasks": tasks, "form": form},
                  status=400 if form.errors else 200)


@capability_required("coordinate")
def task_detail(request, pk):
    task = get_object_or_404(AnnotationTask.objects.select_related("dataset"), pk=pk)
    items = (AnnotationItem.objects.filter(task=task).select_related("case", "radiologist", "drawing")
             .order_by("radiologist__username", "position"))
    totals = items.aggregate(seconds=Sum("seconds_spent"), finished=Count("id", filter=~Q(status="todo")))
    return render(request, "pipeline/annotation/task_detail.html", {"task": task, "items": items, **totals})
