"""mamlscope — a scope to look inside MAML.

The data path, top to bottom: :mod:`~mamlscope.data` makes tasks → :mod:`~mamlscope.models`
computes → :mod:`~mamlscope.inner` adapts → :mod:`~mamlscope.meta` updates θ →
:mod:`~mamlscope.runs` saves → :mod:`~mamlscope.evaluate` / :mod:`~mamlscope.metrics` measure →
:mod:`~mamlscope.results` judges → the notebook plots and explains.
"""

__version__ = "0.1.0"
