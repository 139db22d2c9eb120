"""pytest plugin for the golden checks (``-p nbval_book_cwd``, with tests/ on PYTHONPATH).

nbval starts its kernel in the notebook's folder (``tests/goldens/``), but chapters run in
``book/`` (papermill's cwd in ``make book`` and ``make goldens``). With ``$NBVAL_KERNEL_CWD`` set,
the kernel starts there instead, so that a chapter reading a file relative to ``book/`` behaves
as it did when its golden was made.
"""
import os

from nbval import plugin

_RunningKernel = plugin.RunningKernel


class RunningKernelInCwd(_RunningKernel):
    def __init__(self, kernel_name, cwd=None, *args, **kwargs):
        super().__init__(kernel_name, os.environ.get("NBVAL_KERNEL_CWD") or cwd, *args, **kwargs)


plugin.RunningKernel = RunningKernelInCwd
