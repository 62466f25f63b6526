"""Other libraries' own output kept behind ``-v``: what ONNX Runtime's calibration prints, what
litert-torch, JAX, TensorFlow and absl write to the terminal (from Python and from native code),
while a mobilefer job runs them. With debug logging on (``-v``) everything passes through.
"""
from __future__ import annotations

import contextlib
import logging
import os
import sys
from collections.abc import Iterator

# Read by TensorFlow's and absl's native logging when they load: warnings and errors only.
NATIVE_LOG_ENV = {"TF_CPP_MIN_LOG_LEVEL": "2", "GLOG_minloglevel": "2"}


@contextlib.contextmanager
def others_quiet() -> Iterator[None]:
    """Run the block with file descriptors 1 and 2 (and so Python's stdout, stderr and the log
    handlers that write to them) going nowhere. A no-op under debug logging (``-v``), which is
    where to look when the block fails: a mobilefer error names what went wrong either way.
    Our own progress lines are logged before the block, not in it."""
    if logging.getLogger("mobilefer").isEnabledFor(logging.DEBUG):
        yield
        return
    for key, value in NATIVE_LOG_ENV.items():
        os.environ.setdefault(key, value)
    sys.stdout.flush()
    sys.stderr.flush()
    saved = os.dup(1), os.dup(2)
    sink = os.open(os.devnull, os.O_WRONLY)
    root, handlers = logging.getLogger(), list(logging.getLogger().handlers)
    try:
        os.dup2(sink, 1)
        os.dup2(sink, 2)
        with open(os.devnull, "w") as text, contextlib.redirect_stdout(text), contextlib.redirect_stderr(text):
            try:
                yield  # Python's own streams too, where something has put others than fds 1 and 2 there
            finally:
                # a library that set up logging in the block (absl, TensorFlow: logging.basicConfig)
                # left a handler on the stream closed here: our warnings after it would fail in it
                for handler in [h for h in root.handlers if h not in handlers]:
                    if isinstance(handler, logging.StreamHandler) and handler.stream is text:
                        root.removeHandler(handler)
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        for fd, copy in zip((1, 2), saved):
            os.dup2(copy, fd)
            os.close(copy)
        os.close(sink)
