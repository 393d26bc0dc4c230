"""Preference statistics of blinded reader studies, pure (no Django), in scipy.stats style: functions that
take a votes table and return frozen result objects.

Public names are re-exported here; the modules are ``base`` (votes table, intervals), ``preference``,
``cluster`` (cluster bootstrap), ``mixed`` (mixed model), ``bradley_terry``, ``agreement``, ``quality``
(Dice link), ``report`` (the whole study report) and ``text`` (its plain-text rendering).
"""

from evaluation.stats.report import *  # noqa: F403
from evaluation.stats.report import __all__  # noqa: F401
