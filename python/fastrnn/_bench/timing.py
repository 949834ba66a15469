"""Side-by-side timing: peers in rotating rounds of short bursts, and a meter of what
other processes take from the cores meanwhile."""

from __future__ import annotations

import os
import time

# A burst of calls to one peer lasts about this long (at least _MIN_BURST calls, at most
# _MAX_BURST): long enough that a peer's first, cold call is a small part of its samples.
_BURST_SECONDS = 0.05
_MIN_BURST, _MAX_BURST = 2, 100
# A quiet gap before each burst: after a call, a peer's worker threads keep spinning for a
# while and on a small machine would steal the next peer's cores. Measured after a 2-thread
# call of `default` (2-core Zen 5): ~10 ms of CPU for libgomp's workers (fastrnn, torch),
# ~35 ms for onnxruntime's pool, ~1 ms for openvino's. 50 ms outlasts them all.
_GAP_SECONDS = 0.05
_MIN_ROUNDS = 3
BUSY = 0.1  # above this share of the cores used by other processes, a result is noted as noisy


def _time_side_by_side(calls: dict, min_time: float) -> dict:
    """Times every call in rotating rounds of bursts (see the module docstring). Returns
    {peer: [seconds per call, ...]}. Stops after _MIN_ROUNDS rounds once the calls have run
    min_time per peer in total."""
    bursts = {}
    for name, call in calls.items():
        time.sleep(_GAP_SECONDS)
        call()  # warm-up: first-call allocations, lazy compilation, page faults
        t0 = time.perf_counter()
        call()
        once = max(time.perf_counter() - t0, 1e-7)
        bursts[name] = int(min(_MAX_BURST, max(_MIN_BURST, _BURST_SECONDS / once)))
    samples = {name: [] for name in calls}
    names = list(calls)
    spent, rounds = 0.0, 0
    while rounds < _MIN_ROUNDS or spent < min_time * len(names):
        shift = rounds % len(names)
        for name in names[shift:] + names[:shift]:
            call, out = calls[name], samples[name]
            time.sleep(_GAP_SECONDS)
            for _ in range(bursts[name]):
                t0 = time.perf_counter()
                call()
                out.append(time.perf_counter() - t0)
            spent += sum(out[-bursts[name] :])
        rounds += 1
    return samples


class LoadMeter:
    """The share of the machine's cores that other processes kept busy between start() and
    stop(), from /proc/stat (Linux); None elsewhere. Tells a noisy run from a quiet one. This
    process's own CPU time (all its threads and its waited-for children) is subtracted."""

    def start(self):
        self._t0 = (time.perf_counter(), self._own_seconds(), self._busy_seconds())
        return self

    def stop(self) -> float | None:
        wall0, own0, busy0 = self._t0
        busy1 = self._busy_seconds()
        if busy0 is None or busy1 is None:
            return None
        wall = time.perf_counter() - wall0
        others = (busy1 - busy0) - (self._own_seconds() - own0)
        return max(0.0, others / (wall * (os.cpu_count() or 1)))

    @staticmethod
    def _own_seconds() -> float:
        t = os.times()
        return t.user + t.system + t.children_user + t.children_system

    @staticmethod
    def _busy_seconds() -> float | None:
        try:
            with open("/proc/stat") as f:
                ticks = [int(v) for v in f.readline().split()[1:]]
        except (OSError, ValueError):
            return None
        idle = ticks[3] + ticks[4]  # idle, iowait
        return (sum(ticks[:8]) - idle) / os.sysconf("SC_CLK_TCK")


def wait_for_quiet(max_seconds: float, window: float = 5.0, say=None) -> bool:
    """Waits (at most max_seconds) for a window of `window` seconds in which other processes
    leave the cores alone (their share at most BUSY). True if one came; say(text), when
    given, hears why it waits and whether it gave up."""
    deadline = time.monotonic() + max_seconds
    while time.monotonic() < deadline:
        meter = LoadMeter().start()
        time.sleep(window)
        load = meter.stop()
        if load is None or load <= BUSY:
            return True
        if say:
            say(f"waiting for a quiet machine: other processes use {100 * load:.0f}% of the cores")
    if say:
        say("the machine stayed busy; running anyway (noisy rows are noted)")
    return False
