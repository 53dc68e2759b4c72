"""`petr_node` in a process of its own: how the demo and the tests start, watch and stop it."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any


def ros_arg_value(value: Any) -> str:
    """A Python value as `-p name:=value` text (booleans in ROS's lower case)."""
    return str(value).lower() if isinstance(value, bool) else str(value)


class NodeProcess:
    """A petr_node started with the current interpreter, its output in a log file.

    stop() sends SIGINT (a clean lifecycle shutdown) and kills it after a timeout; it is safe to call twice.
    """

    def __init__(self, env: Mapping[str, str], log_path: Path, params: Mapping[str, Any] | None = None,
                 params_file: Path | None = None, remaps: Mapping[str, str] | None = None,
                 extra_args: list[str] | None = None, cwd: Path | None = None) -> None:
        args = [sys.executable, "-m", "petr_ros.ros.node", "--ros-args"]
        if params_file is not None:
            args += ["--params-file", str(params_file)]
        for name, target in (remaps or {}).items():
            args += ["-r", f"{name}:={target}"]
        for key, value in (params or {}).items():
            args += ["-p", f"{key}:={ros_arg_value(value)}"]
        args += extra_args or []
        self.args = args
        self.log_path = Path(log_path)
        self._log = open(self.log_path, "w")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen(args, env=dict(env), stdout=self._log, stderr=subprocess.STDOUT, cwd=cwd)

    @property
    def pid(self) -> int:
        return self.proc.pid

    def alive(self) -> bool:
        return self.proc.poll() is None

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def wait_for_log(self, text: str, timeout: float) -> bool:
        """True once `text` appears in the log; False after `timeout` s or when the process ended without it."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if text in self.log():
                return True
            if not self.alive():
                return text in self.log()
            time.sleep(0.1)
        return False

    def rss_mb(self) -> float:
        """Resident memory of the node process (Linux /proc), MiB."""
        for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024.0
        raise RuntimeError(f"VmRSS not found for process {self.pid}")

    def stop(self, timeout: float = 15.0) -> int | None:
        if self.alive():
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if not self._log.closed:
            self._log.close()
        return self.proc.returncode
