"""A worker process that runs this process's pure-Python work beside it, on the other core.

Drawing a chart, or parsing and mapping a day's note files, is pure Python (with pandas), and so
is much of what runs beside it: in one process the two take turns on the interpreter lock.
``submit(fn, *args)`` hands a call of a module-level function to one worker process and returns
a ``Future`` of its result, so the two run on both cores. The report draws its charts there
(docs/report.md, "Cost") and ingestion maps a day's notes there (docs/ingestion.md, "Speed").

``call`` runs its call there only when the process already has a worker (``running``), and here
otherwise: a process that runs several stages starts one (``start``) at its beginning.

The worker is this interpreter running ``python -m pipelines.workers`` with this process's
``sys.path``, started by ``start`` or the first ``submit`` and kept for the life of the process
(it ends when this process closes its pipe). It runs nothing but the calls handed to it: no
``__main__`` of the caller is imported again, as a ``multiprocessing`` child would, and a
daemonic process may start it. It reads pickled ``(fn, args)`` from its stdin, one after another,
and writes each pickled result or error to its stdout; its own prints go to stderr. A call is
pickled when it is handed over, so a caller may change its frames afterwards.

A call gives what it would give in this process (the same function and arguments; it must not
depend on this process's state). Where no worker can be started, or the worker dies, the calls it
had not answered run here instead, and the next call starts a worker again, unless the worker
ended before its first answer (its interpreter cannot run it: it would fail at every start), after
which this process runs its calls itself; a forked child starts its own.
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


def _here(fn: Callable, args: tuple, out: Future | None = None) -> Future:
    """``out`` (a new ``Future`` when not given) settled with ``fn(*args)`` run in this thread."""
    out = Future() if out is None else out
    try:
        out.set_result(fn(*args))
    except BaseException as exc:  # the caller sees the call's own error when it reads the result
        out.set_exception(exc)
    return out


class _Worker:
    """One worker process and the calls handed to it, answered in the order they were sent."""

    def __init__(self) -> None:
        env = dict(os.environ, PYTHONPATH=os.pathsep.join(p for p in sys.path if p))
        self.process = subprocess.Popen(
            [sys.executable, "-m", __name__],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            env=env,
            close_fds=True,
        )
        self.pending: deque[tuple[Future, Callable, tuple]] = deque()
        self.lock = threading.Lock()
        self.sending = threading.Lock()
        self.alive = True
        self.answered = 0
        self.closing = False
        threading.Thread(target=self._answers, name="worker-answers", daemon=True).start()

    def submit(self, fn: Callable, args: tuple) -> Future:
        message = _pickled((fn, args))  # now: the caller may change its frames afterwards
        out: Future = Future()
        # Sends are one at a time and in the order of ``pending``. The answer thread takes only
        # ``lock``, never ``sending``: it goes on reading answers while a long send waits for the
        # worker to read, so neither side can block the other.
        with self.sending:
            with self.lock:
                if not self.alive:
                    raise BrokenPipeError("the worker process has ended")
                self.pending.append((out, fn, args))
            try:
                _send(self.process.stdin, message)
            except OSError:
                pass  # the worker ended: the answer thread runs here what it did not answer, this too
        return out

    def _answers(self) -> None:
        stream = self.process.stdout
        try:
            while True:
                ok, value = _receive(stream)
                with self.lock:
                    out, _fn, _args = self.pending.popleft()
                self.answered += 1
                if ok:
                    out.set_result(value)
                else:
                    out.set_exception(value)
        except Exception as exc:  # noqa: BLE001 - the pipe ended, or an answer could not be read
            if self.process.poll() is None:
                self.process.kill()  # an answer not read leaves the stream out of step: no more
            with self.lock:
                self.alive = False
                if not self.answered and not self.closing:
                    _give_up(f"the worker process ended before its first answer ({exc})")
                left = list(self.pending)
                self.pending.clear()
            if left:
                log.warning("the worker process ended (%s); running %d call(s) in this process", exc, len(left))
            for out, fn, args in left:
                _here(fn, args, out)

    def close(self) -> None:
        with self.lock:
            self.alive = False
            self.closing = True
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
_refused: str | None = None  # why this process runs its calls itself from now on (``_give_up``)
_inherited: list[_Worker] = []  # a forked child's copy of its parent's worker (``_forget``)


def _give_up(why: str) -> None:
    """No more workers in this process: one that cannot answer anything (its interpreter cannot
    import this package, say) would fail the same way each time it is started again."""
    global _refused
    if _refused is None:
        _refused = why
        log.warning("%s; calls run in this process from now on", why)


def _current() -> _Worker | None:
    global _worker
    with _lock:
        if _refused is not None:
            return None
        if _worker is None or not _worker.alive:
            try:
                _worker = _Worker()
            except OSError as exc:
                log.info("no worker process, calls run in this process: %s", exc)
                _worker = None
        return _worker


def running() -> bool:
    """Whether this process has a worker (started, and not known to have ended)."""
    with _lock:
        return _worker is not None and _worker.alive


def start() -> None:
    """Start this process's worker now, unless it runs: its start (seconds of imports: pandas, matplotlib)
    then overlaps what this process does before its first call."""
    _current()


def submit(fn: Callable, *args) -> Future:
    """The ``Future`` of ``fn(*args)`` (a module-level function), run in the worker process."""
    worker = _current()
    if worker is not None:
        try:
            return worker.submit(fn, args)
        except (BrokenPipeError, pickle.PicklingError, TypeError, AttributeError) as exc:
            # The worker ended between the check and the send, or an argument does not pickle.
            log.info("calls run in this process: %s", exc)
    return _here(fn, args)


def call(fn: Callable, *args) -> Future:
    """The ``Future`` of ``fn(*args)``: run in the worker process when this process has one
    (``running``), else here and now. What ingestion and the report use: a process that runs
    several stages starts the worker at its start (``runner.run_day``, a run ingesting several
    deliveries), where its imports overlap the work before; a lone stage in a fresh process does
    its work itself, since starting the worker (seconds of imports) would cost more than it saves."""
    return submit(fn, *args) if running() else _here(fn, args)


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
    the parent), so the child starts its own at its first call. The parent's is kept referenced,
    never closed here: its pipes' locks may have been held by that thread at the fork, and
    collecting it would close file descriptors this process may reuse."""
    global _worker, _lock, _refused
    _lock = threading.Lock()
    _refused = None
    if _worker is not None:
        _inherited.append(_worker)
    _worker = None


os.register_at_fork(after_in_child=_forget)


def _serve(requests: BinaryIO, answers: BinaryIO) -> None:
    """The worker's loop: answer each call read from ``requests`` until it ends."""
    while True:
        try:
            fn, args = _receive(requests)
        except EOFError:
            return
        try:
            answer = (True, fn(*args))
        except Exception as exc:  # noqa: BLE001 - handed back to the caller, raised there
            answer = (False, exc)
        try:
            message = _pickled(answer)
        except (pickle.PicklingError, TypeError, AttributeError) as exc:  # an error that does not pickle
            message = _pickled((False, RuntimeError(f"{type(answer[1]).__name__}: {answer[1]} ({exc})")))
        _send(answers, message)


if __name__ == "__main__":
    # The pipe to the parent is fd 1; anything the calls print goes to stderr instead.
    answers = os.fdopen(os.dup(1), "wb")
    os.dup2(2, 1)
    _serve(sys.stdin.buffer, answers)
