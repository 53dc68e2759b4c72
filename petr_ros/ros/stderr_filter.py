"""Drop known noise that native libraries print on the process's stderr (file descriptor 2), keep everything else.

MediaPipe's C++ graph (absl logging, which no environment variable silences) warns about its own internals on every
model load and many frames (`inference_feedback_manager.cc`, `landmark_projection_calculator.cc`: most lines of a
lifecycle run), TensorFlow Lite announces its CPU delegate, and libpng / libjpeg print a line for each corrupt image
the node has already counted and reported as a drop. `install()` puts a pipe on fd 2 and a thread that forwards
every other line to the real stderr unchanged (ROS's console logging included). PETR_RAW_STDERR=1 turns it off.
"""

from __future__ import annotations

import os
import re
import threading

NOISE = re.compile(
    rb"inference_feedback_manager\.cc|landmark_projection_calculator\.cc"
    rb"|^INFO: Created TensorFlow Lite XNNPACK delegate|^WARNING: All log messages before absl::InitializeLog"
    rb"|^libpng (warning|error): |^Corrupt JPEG data: |^Premature end of JPEG file"
)


class StderrFilter:
    """The installed filter: `close()` restores fd 2 and forwards what is still buffered."""

    def __init__(self) -> None:
        self._saved = os.dup(2)
        read_fd, write_fd = os.pipe()
        os.dup2(write_fd, 2)
        os.close(write_fd)
        self._read = read_fd
        self.dropped = 0
        self._thread = threading.Thread(target=self._pump, name="stderr_filter", daemon=True)
        self._thread.start()

    def _forward(self, line: bytes) -> None:
        if NOISE.search(line):
            self.dropped += 1
        else:
            os.write(self._saved, line)

    def _pump(self) -> None:
        pending = b""
        try:
            while chunk := os.read(self._read, 65536):
                pending += chunk
                *lines, pending = pending.split(b"\n")
                for line in lines:
                    self._forward(line + b"\n")
        except OSError:
            pass
        if pending:
            self._forward(pending)

    def close(self) -> None:
        """Put the real stderr back on fd 2 and let the thread forward the rest (end of the pipe)."""
        os.dup2(self._saved, 2)  # the pipe's last writer closes: the pump reads to its end
        self._thread.join(timeout=2.0)
        os.close(self._read)


def install() -> StderrFilter | None:
    """Filter fd 2 of this process (None when PETR_RAW_STDERR=1 or fd 2 cannot be redirected)."""
    if os.environ.get("PETR_RAW_STDERR", "") == "1":
        return None
    try:
        return StderrFilter()
    except OSError:
        return None
