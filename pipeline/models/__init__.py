from pipeline.models.annotation import AnnotationItem, AnnotationTask
from pipeline.models.cases import Case, Dataset, Image, Label, PredictionSet
from pipeline.models.labelgen import ClusteringRun, ClusterMap, LabelQA, RefinementRun
from pipeline.models.runs import DeviceCheckRun, Run, RunEvent, run_models
from pipeline.models.training import CaseMetric, ComparisonRun, TrainingRun

__all__ = ["AnnotationItem", "AnnotationTask", "Case", "CaseMetric", "ClusterMap", "ClusteringRun", "ComparisonRun", "Dataset", "DeviceCheckRun",
           "Image", "Label", "LabelQA", "PredictionSet", "RefinementRun", "Run", "RunEvent", "TrainingRun",
           "run_models"]
