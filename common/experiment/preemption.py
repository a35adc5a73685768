"""Signals: SIGTERM (what SLURM sends before it kills a job) and SIGINT (Ctrl-C).

While an interval trains, the first signal only asks the loop to stop after it (with a checkpoint); a second
one stops at once. `ignore_further_signals` keeps a stopped process's exit down to its one line.
"""

from __future__ import annotations

import contextlib
import gc
import signal
import threading

import jax
import numpy as np

from common.experiment.errors import Interrupted


class Preemption:
    """Installs SIGINT / SIGTERM handlers for one run (main thread only; the previous ones come back after).

    Inside `shielded()` (the set-up: loading, placing, compiling) the first signal is kept pending and `check()`,
    called between the set-up's steps, raises Interrupted: never inside a JAX call, where an exception raised as
    XLA's compilation returns leaves objects that crash the interpreter at exit (exit 139 where 130 / 143 is due).
    Inside `deferred()` (training) the first signal is only recorded: the loop finishes the interval under way
    (updates, logging, evaluation), writes a checkpoint of it and stops. In both, a second signal raises at once.
    Elsewhere a signal raises Interrupted at once.

    Python drops an exception raised where it cannot propagate (a garbage-collector callback such as JAX's, a
    `__del__`); a signal that lands there is kept pending and `check()`, called between the run's steps, raises it.
    """

    SIGNALS = (signal.SIGINT, signal.SIGTERM)

    def __init__(self):
        self.signum, self.deferring, self.shielding, self.previous, self.pending = None, False, False, {}, None

    def __enter__(self):
        if threading.current_thread() is threading.main_thread():
            self.previous = {s: signal.signal(s, self._handle) for s in self.SIGNALS}
        return self

    def __exit__(self, *exc):
        for s, handler in self.previous.items():
            signal.signal(s, signal.SIG_DFL if handler is None else handler)  # None: set outside Python

    def _handle(self, signum, frame):
        if self.deferring and self.signum is None:
            self.signum = signum
            return
        if (self.shielding and self.pending is None) or _exceptions_dropped_in(frame):
            self.pending = self.pending or signum
            return
        raise Interrupted(signum)

    def check(self) -> None:
        """Raises the signal that arrived where it could not be raised, if one did."""
        if self.pending is not None:
            signum, self.pending = self.pending, None
            raise Interrupted(signum)

    @contextlib.contextmanager
    def shielded(self):
        self.shielding = True
        try:
            yield self
        finally:
            self.shielding = False

    @contextlib.contextmanager
    def deferred(self):
        self.deferring = True
        try:
            yield self
        finally:
            self.deferring = False

    def requested(self) -> bool:
        """Whether a signal asked the run to stop; with several processes, whether any process got one."""
        if jax.process_count() > 1:
            from jax.experimental import multihost_utils

            seen = np.asarray(multihost_utils.process_allgather(np.asarray([self.signum or 0])))
            if self.signum is None and seen.any():
                self.signum = int(seen[seen > 0][0])
        return self.signum is not None


def _exceptions_dropped_in(frame) -> bool:
    """Whether `frame` runs inside a garbage-collector callback or a `__del__`, where Python ignores exceptions."""
    callbacks = {getattr(cb, "__code__", None) for cb in gc.callbacks}
    while frame is not None:
        if frame.f_code in callbacks or frame.f_code.co_name == "__del__":
            return True
        frame = frame.f_back
    return False


def ignore_further_signals() -> None:
    """Once the run has stopped, a signal during the process's exit would only add a traceback to its one line."""
    for s in Preemption.SIGNALS:
        signal.signal(s, signal.SIG_IGN)
