"""Step 2: semi-supervised refinement of rough labels into AI labels, and rater combination (no Django)."""

from pipeline.core.refinement.refine import *  # noqa: F403
from pipeline.core.refinement.refine import __all__  # noqa: F401
