"""mamlscope — a scope to look inside MAML.

Folders by role, along the pipeline, each importing only those below it (checked by
import-linter, ``[tool.importlinter]`` in pyproject.toml): :mod:`~mamlscope.core` (tasks →
models → inner loop → outer loops → evaluation; the run cache), :mod:`~mamlscope.training`,
:mod:`~mamlscope.measure`, :mod:`~mamlscope.verdict`, :mod:`~mamlscope.publish`,
:mod:`~mamlscope.studies`; on the ground floor :mod:`~mamlscope.metrics`, ``stats``, ``paths``
and ``progress``. ``python -m mamlscope`` lists the commands.
"""

__version__ = "0.1.0"
