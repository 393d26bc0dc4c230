from .cases import Case, Dataset, Image, Label, PredictionSet
from .labelgen import ClusteringRun, ClusterMap, LabelQA, RefinementRun
from .runs import DeviceCheckRun, Run, RunEvent, run_models
from .training import CaseMetric, ComparisonRun, TrainingRun

__all__ = ["Case", "CaseMetric", "ClusterMap", "ClusteringRun", "ComparisonRun", "Dataset", "DeviceCheckRun",
           "Image", "Label", "LabelQA", "PredictionSet", "RefinementRun", "Run", "RunEvent", "TrainingRun",
           "run_models"]
