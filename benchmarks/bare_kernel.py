"""The baseline under SDK run_code: ipykernel alone, driven by jupyter_client, no host in between.

The same kernel the local host starts (the sandbox runtime's python, ipykernel and flags, Unix
socket transport), on this machine, in a temporary directory; "1 + 1" until its "idle" status, as
the host waits for. What SDK run_code costs beyond this is the host's and the SDK's.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path
from typing import Any

from jupyter_client.connect import write_connection_file
from jupyter_client.manager import KernelManager

from benchmarks.report import percentiles
from local.sandbox_runtime import ensure_runtime

# As local/e2b_host/kernels.py starts it (the extension and E2B's display settings).
KERNEL_FLAGS = (
    "--IPKernelApp.extensions=e2b_display",
    "--InteractiveShell.colors=NoColor",
    "--PlainTextFormatter.max_seq_length=0",
    "--HistoryManager.hist_file=:memory:",
)
CELL_TIMEOUT_S = 10


def bench_kernel_alone(repeat: int) -> dict[str, Any]:
    python = ensure_runtime() / "bin" / "python"
    with tempfile.TemporaryDirectory(prefix="bare-kernel-") as scratch:
        connection = Path(scratch) / "kernel.json"
        write_connection_file(str(connection), ip=f"{scratch}/k", transport="ipc")
        manager = KernelManager(connection_file=str(connection), transport="ipc", ip=f"{scratch}/k")
        manager.load_connection_file()
        manager.kernel_cmd = [str(python), "-m", "ipykernel_launcher", "-f", str(connection), *KERNEL_FLAGS]
        manager.start_kernel(cwd=scratch)
        client = manager.client()
        client.start_channels()
        try:
            client.wait_for_ready(timeout=60)
            run_cell(client)  # warm, as every case of the benchmarks is
            samples = []
            for _ in range(repeat):
                started = time.perf_counter()
                run_cell(client)
                samples.append((time.perf_counter() - started) * 1000)
        finally:
            client.stop_channels()
            manager.shutdown_kernel(now=True)
    return percentiles(samples)


def run_cell(client: Any) -> None:
    msg_id = client.execute("1 + 1", store_history=True)
    result = None
    while True:
        message = client.get_iopub_msg(timeout=CELL_TIMEOUT_S)
        if message["parent_header"].get("msg_id") != msg_id:
            continue
        if message["msg_type"] == "execute_result":
            result = message["content"]["data"]["text/plain"]
        if message["msg_type"] == "status" and message["content"]["execution_state"] == "idle":
            assert result == "2", result
            return
