"""Progress bars that switch themselves off when nobody is watching.

tqdm writes to stderr; inside nbval/papermill that would make cell outputs differ from run to
run. A bar is shown only when stderr is a terminal, unless ``enable`` or ``$MAMLSCOPE_PROGRESS``
(``1``/``0``) says otherwise.
"""
from __future__ import annotations

import os
import sys

from tqdm import tqdm


def progress_enabled(enable: bool | None = None) -> bool:
    if enable is not None:
        return enable
    env = os.environ.get("MAMLSCOPE_PROGRESS")
    if env is not None:
        return env not in ("0", "false", "no", "")
    return sys.stderr.isatty()


def progress_bar(iterable=None, *, enable: bool | None = None, **kwargs):
    """``tqdm(iterable, **kwargs)``, disabled unless :func:`progress_enabled`."""
    return tqdm(iterable, disable=not progress_enabled(enable), **kwargs)
