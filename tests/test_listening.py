"""Nothing the book starts listens beyond this machine: the Dask cluster that ``make book`` and
``runs train`` start, and the Jupyter kernels that papermill starts, open only loopback sockets.
The checker has teeth: a dashboard on ``":0"`` (all interfaces) is seen."""
import ipaddress

import psutil
from jupyter_client.manager import KernelManager

from mamlscope.training import schedule


def listeners(pid: int) -> set[tuple[str, int]]:
    """(address, port) of every listening TCP socket of process ``pid`` and its descendants."""
    procs = [psutil.Process(pid)]
    procs += procs[0].children(recursive=True)
    out = set()
    for p in procs:
        try:
            conns = p.net_connections(kind="inet")
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            continue
        out |= {(c.laddr.ip, c.laddr.port) for c in conns if c.status == psutil.CONN_LISTEN}
    return out


def beyond_loopback(socks) -> set:
    return {(ip, port) for ip, port in socks if not ipaddress.ip_address(ip.split("%")[0]).is_loopback}


def _cluster_listeners(**kwargs):
    import os

    cluster = schedule.local_cluster(2, threads=schedule.BOOK_THREADS, **kwargs)  # as make book starts it
    try:
        cluster.wait_for_workers(2, timeout=60)
        return listeners(os.getpid())
    finally:
        cluster.close()


def test_the_books_cluster_listens_on_loopback_only():
    socks = _cluster_listeners()
    assert len(socks) >= 5, socks  # scheduler, 2 nannies, 2 workers: the check saw them
    assert beyond_loopback(socks) == set(), socks


def test_a_dashboard_on_every_interface_is_seen():
    assert beyond_loopback(_cluster_listeners(dashboard=":0")), "the checker would miss an open dashboard"


def test_the_dashboard_when_asked_for_stays_on_loopback():
    assert beyond_loopback(_cluster_listeners(dashboard="127.0.0.1:0")) == set()


def test_papermills_kernels_listen_on_loopback_only():
    km = KernelManager(kernel_name="python3")  # what papermill's nbclient starts for each chapter
    km.start_kernel()
    try:
        client = km.client()
        client.start_channels()
        client.wait_for_ready(timeout=60)
        socks = listeners(km.provisioner.process.pid)
        client.stop_channels()
    finally:
        km.shutdown_kernel(now=True)
    assert len(socks) >= 5, socks  # shell, iopub, stdin, control, heartbeat
    assert beyond_loopback(socks) == set(), socks
