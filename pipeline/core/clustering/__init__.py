"""Step 1: unsupervised 3D multi-modal segmentation by feature clustering (no Django).

``config`` (:class:`ClusteringConfig`, presets) needs no torch, so web pages can validate a run's settings;
the trainer, network and loss (``trainer``, ``model``) load torch when first used from here.
"""

from pipeline.core.clustering.config import ClusteringConfig

__all__ = [
    "ClusteringConfig", "ClusterNet", "ClusteringLoss", "make_augmentation", "EpochStats", "FitResult",
    "ClusteringTrainer", "validate_cases", "validate_val_labels",
]


def __getattr__(name):  # torch is imported on first use of a trainer name, not by `import ...clustering.config`
    if name in __all__:
        from pipeline.core.clustering import trainer

        return getattr(trainer, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
