"""The worker process: a call run there gives what it gives here (a chart byte for byte); a worker
that dies costs no call; the caller's script is not run again in it; a forked child has its own."""

from __future__ import annotations

import operator
import os
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pandas as pd
import pytest

from pipelines import workers
from pipelines.report import charts

REPO = Path(__file__).resolve().parent.parent


def _hist(scale: float = 1.0) -> pd.DataFrame:
    low = [k / 10 for k in range(10)]
    return pd.DataFrame({
        "bin_low": low,
        "bin_high": [*low[1:], 1.0],
        "signals": [scale * (k + 1) * 100 for k in range(10)],
    })


def _funnel_rows() -> pd.DataFrame:
    return pd.DataFrame({"exposed_users": [9, 7, 5], "search_back_users": [4, 3, 2],
                         "seeded_orders": [2, 1, 1], "seeded_gmv_yuan": [20.0, 10.0, 5.0]})


def test_a_chart_drawn_in_the_worker_is_the_chart_drawn_here():
    labels = ["雅诗兰黛", "SK-II 💄", "$x$ <b>"]
    drawn = [workers.submit(charts.boost, _hist()), workers.submit(charts.funnel, _funnel_rows(), labels)]
    assert workers._worker is not None and workers._worker.process.poll() is None
    assert [f.result(timeout=120) for f in drawn] == [charts.boost(_hist()), charts.funnel(_funnel_rows(), labels)]


def test_the_chart_is_of_the_frame_as_it_was_handed_over():
    hist = _hist()
    later = workers.submit(charts.boost, hist)
    hist["signals"] = 0.0  # changed after the hand-over: the chart is of the frame before
    assert later.result(timeout=120) == charts.boost(_hist())


def test_a_chart_that_fails_raises_its_own_error():
    broken = workers.submit(charts.boost, _hist().drop(columns="signals"))
    with pytest.raises(KeyError, match="signals"):
        broken.result(timeout=120)
    assert workers.submit(charts.boost, _hist()).result(timeout=120) == charts.boost(_hist())  # the worker goes on


def test_a_worker_that_dies_costs_no_call():
    workers.submit(operator.pow, 2, 1).result(timeout=120)  # a worker is running
    worker = workers._worker
    os.kill(worker.process.pid, signal.SIGSTOP)  # handed calls it cannot answer yet
    waiting = [workers.submit(operator.pow, 2, n) for n in (10, 20, 30)]
    os.kill(worker.process.pid, signal.SIGKILL)
    worker.process.wait(timeout=30)
    assert [f.result(timeout=120) for f in waiting] == [2**10, 2**20, 2**30]
    again = workers.submit(operator.pow, 3, 3)  # the next call starts a new worker
    assert workers._worker is not worker and workers._worker.alive
    assert again.result(timeout=120) == 27


def test_futures_are_settled_at_any_depth():
    done = workers.submit(operator.pow, 2, 4)
    value = workers.settled([{"blocks": [{"src": done, "n": 1}]}, "text"])
    assert value == [{"blocks": [{"src": 16, "n": 1}]}, "text"]


def test_the_callers_script_is_not_run_again_in_the_worker(tmp_path):
    """A script without a ``__main__`` guard that hands a call to the worker runs once: the worker
    imports only what the call needs, where a ``multiprocessing`` child would import the script again."""
    marker = tmp_path / "ran"
    script = tmp_path / "unguarded.py"
    script.write_text(textwrap.dedent(f"""
        import operator
        from pipelines import workers
        with open({str(marker)!r}, "a") as f:
            f.write("x")
        assert workers.submit(operator.pow, 2, 5).result(timeout=120) == 32
        assert workers._worker is not None and workers._worker.answered == 1
    """))
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]))
    subprocess.run([sys.executable, str(script)], check=True, env=env, timeout=300, cwd=tmp_path)
    assert marker.read_text() == "x"


def test_a_forked_child_has_its_own_worker():
    workers.submit(operator.pow, 2, 1).result(timeout=120)  # the parent has a worker
    parent = workers._worker
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: report through the pipe, never return into pytest
        ok = 0
        try:
            ok = int(workers.submit(operator.pow, 2, 7).result(timeout=120) == 128 and workers._worker is not parent)
        finally:
            os.write(write, b"%d" % ok)
            os._exit(0)
    os.close(write)
    assert os.read(read, 8) == b"1"
    os.waitpid(pid, 0)
    os.close(read)
    assert workers._worker is parent and parent.alive
    assert workers.submit(operator.pow, 2, 9).result(timeout=120) == 512


def test_a_worker_that_never_answers_is_not_started_again(monkeypatch):
    """An interpreter that cannot run the worker (here one that exits at once) would fail the same
    way at every start: the calls run in this process, and no worker is started again."""
    monkeypatch.setattr(workers, "_worker", None)
    monkeypatch.setattr(workers, "_refused", None)
    monkeypatch.setattr(sys, "executable", shutil.which("false"))
    assert workers.submit(charts.boost, _hist()).result(timeout=120) == charts.boost(_hist())
    deadline = time.monotonic() + 60
    while workers._refused is None and time.monotonic() < deadline:  # the answer thread sees the end
        time.sleep(0.05)
    assert "before its first answer" in workers._refused and not workers.running()
    started = []
    monkeypatch.setattr(workers, "_Worker", lambda: started.append(1))
    assert workers.submit(charts.boost, _hist(2.0)).result(timeout=120) == charts.boost(_hist(2.0))
    assert started == []


def _explode():
    raise ValueError("this answer cannot be read here")


class _Unreadable:
    """Pickles in the worker; unpickling it (in the caller) raises."""

    def __reduce__(self):
        return _explode, ()


def _unreadable() -> _Unreadable:
    return _Unreadable()


def test_an_answer_that_cannot_be_read_runs_the_call_here():
    workers.submit(operator.pow, 2, 1).result(timeout=120)  # a worker that has answered
    worker = workers._worker
    got = workers.submit(_unreadable).result(timeout=120)
    assert isinstance(got, _Unreadable)  # the call ran here, after the worker was ended
    worker.process.wait(timeout=30)
    assert not worker.alive
    assert workers.submit(operator.pow, 2, 3).result(timeout=120) == 8 and workers._worker is not worker
