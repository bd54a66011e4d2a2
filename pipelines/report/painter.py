"""The report's charts drawn in a worker process, while this process reads the figures.

Drawing a chart is pure Python (matplotlib lays out and writes every artist), and so is most of
building the frames the database returns; in one process the two take turns on the interpreter
lock. ``draw(chart, *args)`` hands the chart to one worker process and returns a ``Future`` of
its data URI, so the charts are drawn on one core while the figures are read on the other.

The worker is this interpreter running ``python -m pipelines.report.painter`` with this
process's ``sys.path``, started at the first chart and kept for the life of the process (it ends
when this process closes its pipe). It runs nothing but the charts: no ``__main__`` of the caller
is imported again, as a ``multiprocessing`` child would, and a daemonic process may start it. It
reads pickled ``(chart, args)`` calls from its stdin, one after another, and writes each pickled
result or error to its stdout; its own prints go to stderr. A chart is pickled when it is handed
over, so a caller may change its frames afterwards.

It draws exactly what a call in this process would (the same function and arguments, the same
matplotlib style and fonts), byte for byte. Where no worker can be started, or the worker dies,
the charts it had not returned are drawn here instead, and the next chart starts a worker again.
"""

from __future__ import annotations

import atexit
import logging
import os
import pickle
import struct
import subprocess
import sys
import threading
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future
from typing import BinaryIO

log = logging.getLogger(__name__)

_HEADER = struct.Struct("<Q")  # the length of the pickle that follows


def _pickled(obj) -> bytes:
    blob = pickle.dumps(obj, protocol=pickle.HIGHEST_PROTOCOL)
    return _HEADER.pack(len(blob)) + blob


def _send(stream: BinaryIO, message: bytes) -> None:
    stream.write(message)
    stream.flush()


def _receive(stream: BinaryIO):
    """The next object of ``stream``; EOFError when it ends."""
    header = stream.read(_HEADER.size)
    if len(header) < _HEADER.size:
        raise EOFError
    size = _HEADER.unpack(header)[0]
    blob = stream.read(size)
    if len(blob) < size:
        raise EOFError
    return pickle.loads(blob)


def _here(chart: Callable[..., str], args: tuple, out: Future) -> None:
    try:
        out.set_result(chart(*args))
    except BaseException as exc:  # the caller sees the chart's own error when it reads the result
        out.set_exception(exc)


class _Worker:
    """One worker process and the charts handed to it, answered in the order they were sent."""

    def __init__(self) -> None:
        env = dict(os.environ, PYTHONPATH=os.pathsep.join(p for p in sys.path if p))
        self.process = subprocess.Popen(
            [sys.executable, "-m", __name__],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            env=env,
            close_fds=True,
        )
        self.pending: deque[tuple[Future, Callable[..., str], tuple]] = deque()
        self.lock = threading.Lock()
        self.sending = threading.Lock()
        self.alive = True
        threading.Thread(target=self._answers, name="report-painter", daemon=True).start()

    def submit(self, chart: Callable[..., str], args: tuple) -> Future:
        message = _pickled((chart, args))  # now: the caller may change its frames afterwards
        out: Future = Future()
        # Sends are one at a time and in the order of ``pending``. The answer thread takes only
        # ``lock``, never ``sending``: it goes on reading answers while a long send waits for the
        # worker to read, so neither side can block the other.
        with self.sending:
            with self.lock:
                if not self.alive:
                    raise BrokenPipeError("the chart worker has ended")
                self.pending.append((out, chart, args))
            try:
                _send(self.process.stdin, message)
            except OSError:
                pass  # the worker ended: the answer thread draws what it did not answer, this too
        return out

    def _answers(self) -> None:
        stream = self.process.stdout
        try:
            while True:
                ok, value = _receive(stream)
                with self.lock:
                    out, _chart, _args = self.pending.popleft()
                if ok:
                    out.set_result(value)
                else:
                    out.set_exception(value)
        except (EOFError, OSError, pickle.UnpicklingError) as exc:
            with self.lock:
                self.alive = False
                left = list(self.pending)
                self.pending.clear()
            if left:
                log.warning("the chart worker ended (%s); drawing %d chart(s) in this process", exc, len(left))
            for out, chart, args in left:
                _here(chart, args, out)

    def close(self) -> None:
        with self.lock:
            self.alive = False
        try:
            self.process.stdin.close()
        except OSError:
            pass
        try:
            self.process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self.process.kill()


_lock = threading.Lock()
_worker: _Worker | None = None
_inherited: list[_Worker] = []  # a forked child's copy of its parent's worker (``_forget``)


def _current() -> _Worker | None:
    global _worker
    with _lock:
        if _worker is None or not _worker.alive:
            try:
                _worker = _Worker()
            except OSError as exc:
                log.info("charts drawn in this process: %s", exc)
                _worker = None
        return _worker


def draw(chart: Callable[..., str], *args) -> Future:
    """The ``Future`` of ``chart(*args)`` (a module-level function), drawn in the worker process."""
    worker = _current()
    if worker is not None:
        try:
            return worker.submit(chart, args)
        except (BrokenPipeError, pickle.PicklingError, TypeError, AttributeError) as exc:
            # The worker ended between the check and the send, or an argument does not pickle.
            log.info("charts drawn in this process: %s", exc)
    out: Future = Future()
    _here(chart, args, out)
    return out


def settled(value):
    """``value`` with every ``Future`` in it (in dicts and lists, at any depth) replaced by its result."""
    if isinstance(value, Future):
        return value.result()
    if isinstance(value, dict):
        return {k: settled(v) for k, v in value.items()}
    if isinstance(value, list):
        return [settled(v) for v in value]
    return value


@atexit.register
def _close() -> None:
    if _worker is not None:
        _worker.close()


def _forget() -> None:
    """In a forked child: the parent's worker is not this process's (its answer thread stayed in
    the parent), so the child starts its own at its first chart. The parent's is kept referenced,
    never closed here: its pipes' locks may have been held by that thread at the fork, and
    collecting it would close file descriptors this process may reuse."""
    global _worker, _lock
    _lock = threading.Lock()
    if _worker is not None:
        _inherited.append(_worker)
    _worker = None


os.register_at_fork(after_in_child=_forget)


def _serve(requests: BinaryIO, answers: BinaryIO) -> None:
    """The worker's loop: answer each call read from ``requests`` until it ends."""
    while True:
        try:
            chart, args = _receive(requests)
        except EOFError:
            return
        try:
            answer = (True, chart(*args))
        except Exception as exc:  # noqa: BLE001 - handed back to the caller, raised there
            answer = (False, exc)
        try:
            message = _pickled(answer)
        except (pickle.PicklingError, TypeError, AttributeError) as exc:  # an error that does not pickle
            message = _pickled((False, RuntimeError(f"{type(answer[1]).__name__}: {answer[1]} ({exc})")))
        _send(answers, message)


if __name__ == "__main__":
    # The pipe to the parent is fd 1; anything the charts print goes to stderr instead.
    answers = os.fdopen(os.dup(1), "wb")
    os.dup2(2, 1)
    from . import charts  # noqa: F401 - imported before the first call, not during it

    _serve(sys.stdin.buffer, answers)
