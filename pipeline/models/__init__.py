from .cases import Case, Dataset, Image, Label, PredictionSet
from .labelgen import ClusteringRun, ClusterMap, LabelQA, RefinementRun
from .runs import DeviceCheckRun, Run, RunEvent, run_models

__all__ = ["Case", "ClusterMap", "ClusteringRun", "Dataset", "DeviceCheckRun", "Image", "Label", "LabelQA",
           "PredictionSet", "RefinementRun", "Run", "RunEvent", "run_models"]
