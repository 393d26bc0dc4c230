"""Downstream 3D U-Net: data, trainer, evaluation (no Django).

``config`` (:class:`UNetConfig`) needs no torch; the trainer and data pipeline load torch and MONAI when
first used from here.
"""

from pipeline.core.unet.config import UNetConfig

__all__ = ["UNetConfig", "EpochStats", "FitResult", "UNetTrainer", "build_unet", "evaluate", "paired_test",
           "validate_cases"]


def __getattr__(name):  # torch is imported on first use of a trainer name, not by `import ...unet.config`
    if name in __all__:
        from pipeline.core.unet import trainer

        return getattr(trainer, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
