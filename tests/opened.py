"""Which files a block of code opens: an audit hook on ``open`` (``open``, ``os.open``), for the
tests that prove ingestion reads nothing outside the landing zone."""

from __future__ import annotations

import os
import sys

_opened: list[str] | None = None


def _audit(event: str, args: tuple) -> None:
    if _opened is not None and event == "open" and isinstance(args[0], (str, bytes, os.PathLike)):
        path, flags = os.fsdecode(args[0]), args[2] if len(args) > 2 and isinstance(args[2], int) else 0
        if flags & os.O_NOFOLLOW and os.path.islink(path):
            return  # the kernel refuses to open it: nothing is read through the link
        _opened.append(os.path.realpath(path))  # where it leads, links followed


sys.addaudithook(_audit)  # inert unless a block is watched (an audit hook cannot be removed)


class watch_opens:  # noqa: N801 - used as a context manager
    """Every file ``open`` / ``os.open`` reached while the block runs (links resolved).

    The audit hook sees this process only, so while the block runs nothing is handed to the
    worker process (``pipelines.workers``: ingestion maps a day's notes there when one runs)."""

    def __enter__(self) -> list[str]:
        global _opened
        from pipelines import workers

        self._running = workers.running
        workers.running = lambda: False
        _opened = []
        return _opened

    def __exit__(self, *exc) -> None:
        global _opened
        from pipelines import workers

        workers.running = self._running
        _opened = None
