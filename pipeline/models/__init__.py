from .cases import Case, Dataset, Image, Label, PredictionSet
from .runs import DeviceCheckRun, Run, RunEvent, run_models

__all__ = ["Case", "Dataset", "DeviceCheckRun", "Image", "Label", "PredictionSet", "Run", "RunEvent", "run_models"]
