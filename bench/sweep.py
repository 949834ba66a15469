"""No cliffs: fastrnn's time per step over hidden sizes and batch sizes.

    python bench/sweep.py                    both sweeps, 1 and 2 threads, torch alongside (~4 min)
    python bench/sweep.py --no-torch         fastrnn alone (~2 min)
    python bench/sweep.py --only H --threads 1 --target-ms 10
    python bench/sweep.py --only B --sizes 1 4 8   some points of one sweep
    python bench/sweep.py --quick            H = 64 and 256 at 1 thread, a few seconds; writes
                                             into a temporary directory

Two sweeps of a one-layer LSTM with I = H, time-major, zero initial state:

- H: 32 … 2048 (powers of two and odd sizes between) at B = 1;
- B: 1 … 256 (every size to 8, then odd and even sizes up to 256) at H = 256.

At each point T is chosen so that one fastrnn call at 1 thread takes about --target-ms
(8 ≤ T ≤ 2048), and the time per step is the call's time ÷ T (input projection included, as a
user sees it). fastrnn at 1 and 2 threads (and torch, for context) run side by side in rounds,
the order rotating, each timed call preceded by an untimed one (same weights warm in cache)
and a pause that lets the previous runner's spinning worker threads go quiet.

The machine is shared, and other processes only ever make a call slower (a 2-thread call
whose second core is taken waits at every step's barrier). So the figure kept per point and
runner is the fastest of its timed calls: calls are short (a few ms) and many (--rounds), so
that some of them run while the cores are free; the median is recorded too (sweep.json).
Before each point the sweep waits briefly for a quiet moment (--wait-quiet), and before each
fastrnn's oversubscription back-off is off (FASTRNN_BACKOFF=0), so that a "2 threads" call
really runs on 2 threads; other processes' share of the cores while a point was timed is
recorded (/proc/stat).

A cliff is a point whose time per multiply-add rises more than CLIFF× over its smaller
neighbour in the sweep. Each flagged point and its neighbours are timed again (--recheck
passes, adding to their calls) before the flags are final, so that one noisy moment does not
pass for a cliff. Each flag also says whether the machine explains it: the lower bound of
limits.py (W_hh read from the smallest cache that holds it, or the FMA peak) rising by as
much means the weights moved to a slower cache level, not that fastrnn fell off a cliff.

Writes bench/sweep.json (every measurement), bench/sweep.md (the tables and the flags) and
bench/sweep.png (time per step and GFLOP/s against H and against B). The bounds are those of
the ISA fastrnn runs (its FMA peak; FASTRNN_ISA=avx2 sweeps the AVX2 path); without g++ for
limits.py, the tables have no bounds.
"""

from __future__ import annotations

import argparse
import datetime
import json
import math
import os
import sys
import tempfile
import time

import numpy as np

# The oversubscription back-off would time a noisy moment's "2 thread" points on one thread:
# the sweep asks for the thread count it names (read by fastrnn's core at its first call).
os.environ.setdefault("FASTRNN_BACKOFF", "0")

import limits
from workloads import Workload, format_time
from workloads import runner as _bench

import fastrnn  # after workloads, which picks the checkout's fastrnn when it is built

HERE = os.path.dirname(os.path.abspath(__file__))

H_SWEEP = (32, 48, 64, 96, 100, 128, 192, 256, 257, 384, 512, 768, 1000, 1024, 1536, 2048)
B_SWEEP = (1, 2, 3, 4, 5, 6, 7, 8, 12, 16, 24, 32, 48, 64, 100, 128, 256)
H_FOR_B = 256
QUICK_SIZES = (64, 256)  # --quick: two points of the H sweep (W_hh 64 KiB and 1 MiB)
CLIFF = 1.5  # a rise in time per multiply-add above this between neighbours is flagged
T_MIN, T_MAX = 8, 2048  # T_MAX bounds torch's calls at small H (~10× fastrnn's time per step)
MIN_ROUNDS, POINT_SECONDS = 5, 3.0  # after 5 rounds, a point stops once it has taken 3 s
GAP_SECONDS = 0.02  # torch's OpenMP workers spin ~10 ms after a 2-thread call (fastrnn's 2)


def macs_per_step(H: int, B: int) -> int:
    """Multiply-adds of one LSTM step with I = H: B · 4H · (I + H)."""
    return B * 4 * H * (H + H)


class Point:
    """One (H, B) shape: its models, input, and the runners timed on it."""

    def __init__(self, sweep: str, H: int, B: int, torch_mod, seed: int = 0):
        self.sweep, self.H, self.B = sweep, H, B
        rng = np.random.default_rng(seed)
        if torch_mod is not None:
            with torch_mod.random.fork_rng(devices=[]):
                torch_mod.manual_seed(seed)
                self.torch_module = torch_mod.nn.LSTM(H, H).eval()
            self.model = fastrnn.from_torch(self.torch_module)
        else:
            self.torch_module = None
            self.model = _bench._fastrnn_module(Workload("sweep", "LSTM", B, 1, H, H), seed)
        self._rng = rng
        self.T = None
        self.x = None

    def calibrate(self, target_s: float) -> None:
        """Chooses T so that a fastrnn call at 1 thread takes about target_s."""
        T0 = 32 if self.H < 1024 else 8
        x0 = self._rng.standard_normal((T0, self.B, self.H), dtype=np.float32)
        fastrnn.set_num_threads(1)
        self.model(x0)
        best = math.inf
        for _ in range(2):
            t0 = time.perf_counter()
            self.model(x0)
            best = min(best, time.perf_counter() - t0)
        self.T = int(min(T_MAX, max(T_MIN, round(target_s * T0 / best))))
        self.x = self._rng.standard_normal((self.T, self.B, self.H), dtype=np.float32)

    def runners(self, thread_counts, with_torch: bool) -> dict:
        """{name: (threads, call)}: fastrnn at each thread count, then torch."""
        out = {}
        model, x = self.model, self.x
        for n in thread_counts:
            out[f"fastrnn@{n}"] = (n, lambda model=model: model(x))
        if with_torch and self.torch_module is not None:
            import torch

            xt, m = torch.from_numpy(x), self.torch_module

            def torch_call():
                with torch.inference_mode():
                    return m(xt)

            for n in thread_counts:
                out[f"torch@{n}"] = (n, torch_call)
        return out


def set_threads(n: int, torch_mod) -> None:
    fastrnn.set_num_threads(n)
    if torch_mod is not None:
        torch_mod.set_num_threads(n)


def time_point(point: Point, runners: dict, rounds: int, torch_mod) -> tuple:
    """({runner: [seconds per step, one per round]}, others' share of the cores meanwhile).
    Each round times every runner once, after an untimed call; the order rotates."""
    samples = {name: [] for name in runners}
    names = list(runners)
    deadline = time.monotonic() + POINT_SECONDS
    meter = _bench.LoadMeter().start()
    for r in range(rounds):
        if r >= MIN_ROUNDS and time.monotonic() > deadline:
            break  # a very noisy moment: slow calls would blow the sweep's time budget
        shift = r % len(names)
        for name in names[shift:] + names[:shift]:
            n, call = runners[name]
            set_threads(n, torch_mod)
            time.sleep(GAP_SECONDS)
            call()  # untimed: brings this runner's weights back into cache
            t0 = time.perf_counter()
            call()
            samples[name].append((time.perf_counter() - t0) / point.T)
    return samples, meter.stop()


def bound_ns(
    H: int, B: int, T: int, lim: dict | None, threads: int, isa: str | None = None
) -> float | None:
    """limits.py's lower bound per step for fastrnn's isa, in ns (None without limits)."""
    if lim is None:
        return None
    w = Workload("sweep", "LSTM", B, T, H, H)
    return limits.lower_bound(w, lim, threads, isa)["bound_us"] * 1e3 / T


def measure(
    points, thread_counts, with_torch, rounds, torch_mod, say, wait_quiet=0.0, records=None
) -> dict:
    """Times every point; returns {(sweep, H, B): record}, merged into `records` (a second
    pass adds its calls to the first's)."""
    records = {} if records is None else records
    for i, p in enumerate(points, 1):
        if wait_quiet:
            _bench.wait_for_quiet(wait_quiet, window=0.5)
        runners = p.runners(thread_counts, with_torch)
        samples, load = time_point(p, runners, rounds, torch_mod)
        key = (p.sweep, p.H, p.B)
        rec = records.setdefault(
            key,
            {
                "sweep": p.sweep,
                "H": p.H,
                "B": p.B,
                "I": p.H,
                "T": p.T,
                "macs_per_step": macs_per_step(p.H, p.B),
                "threads_used": {
                    str(n): int(p.model.plan(p.B, 10**4, num_threads=n)["threads"])
                    for n in thread_counts
                },
                "passes": 0,
                "runners": {},
                "others_load": [],
            },
        )
        rec["passes"] += 1
        rec["others_load"].append(load)
        for name, s in samples.items():
            ns = [x * 1e9 for x in s]
            old = rec["runners"].setdefault(name, {"ns_per_step_all_rounds": []})
            old["ns_per_step_all_rounds"] += ns
            best = min(old["ns_per_step_all_rounds"])
            old.update(
                ns_per_step=best,
                median_ns_per_step=float(np.median(old["ns_per_step_all_rounds"])),
                gflops=2 * rec["macs_per_step"] / best,
            )
        say(
            f"[{i}/{len(points)}] {p.sweep}: H={p.H} B={p.B} T={p.T}: "
            + ", ".join(
                f"{name} {format_time(r['ns_per_step'] / 1e3)}/step"
                for name, r in rec["runners"].items()
            )
            + (f"  (others {100 * load:.0f}%)" if load is not None else "")
        )
    return records


def series(records: dict, sweep: str) -> list:
    recs = [r for r in records.values() if r["sweep"] == sweep]
    return sorted(recs, key=lambda r: (r["H"], r["B"]))


def find_cliffs(records: dict, thread_counts, lim: dict | None, isa: str | None = None) -> list:
    """[{sweep, runner, at (H, B), previous (H, B), rise, bound_rise, explained}] for every
    neighbour pair of fastrnn's points where time per multiply-add rises above CLIFF×
    (bound_rise None, explained False without limits)."""
    flags = []
    for sweep in ("H", "B"):
        recs = series(records, sweep)
        for n in thread_counts:
            name = f"fastrnn@{n}"
            for a, b in zip(recs, recs[1:]):
                ra, rb = a["runners"].get(name), b["runners"].get(name)
                if not ra or not rb:
                    continue
                per_mac_a = ra["ns_per_step"] / a["macs_per_step"]
                per_mac_b = rb["ns_per_step"] / b["macs_per_step"]
                rise = per_mac_b / per_mac_a
                if rise <= CLIFF:
                    continue
                ba = bound_ns(a["H"], a["B"], a["T"], lim, n, isa)
                bb = bound_ns(b["H"], b["B"], b["T"], lim, n, isa)
                bound_rise = (
                    (bb / b["macs_per_step"]) / (ba / a["macs_per_step"]) if ba and bb else None
                )
                one = b["runners"].get("fastrnn@1")
                flags.append(
                    {
                        "sweep": sweep,
                        "runner": name,
                        "at": [b["H"], b["B"]],
                        "previous": [a["H"], a["B"]],
                        "rise": rise,
                        "bound_rise": bound_rise,
                        # the machine's bound rises at least halfway (in log terms) as much
                        "explained": bound_rise is not None
                        and math.log(bound_rise) >= 0.5 * math.log(rise),
                        # n threads no faster than one where fastrnn splits the work: every
                        # timed call ran on one thread (back-off) or waited for a taken core
                        "as_one_thread": n > 1
                        and b["threads_used"].get(str(n), 1) > 1
                        and one is not None
                        and rb["ns_per_step"] >= 0.95 * one["ns_per_step"],
                    }
                )
    return flags


def flagged_points(flags, by_key: dict) -> list:
    """The points of each flag and their neighbours in their sweep."""
    keys = set()
    for f in flags:
        sweep = f["sweep"]
        order = sorted((k for k in by_key if k[0] == sweep), key=lambda k: (k[1], k[2]))
        at = (sweep, *f["at"])
        i = order.index(at)
        keys.update(order[max(0, i - 1) : i + 2])
    return [by_key[k] for k in sorted(keys)]


# --- output ----------------------------------------------------------------------------------


def _t(ns: float | None) -> str:
    return "—" if ns is None else format_time(ns / 1e3)


def format_markdown(doc: dict) -> str:
    recs, thread_counts, lim = doc["records"], doc["threads"], doc["limits"]
    isa = doc["machine"]["fastrnn"]["isa"]
    names = [f"fastrnn@{n}" for n in thread_counts]
    torch_names = [
        f"torch@{n}" for n in thread_counts if any(f"torch@{n}" in r["runners"] for r in recs)
    ]
    flagged = {(f["sweep"], *f["at"], f["runner"]) for f in doc["cliffs"]}
    out = []
    for sweep, title in (
        ("H", "Time per step against H (B = 1, I = H)"),
        ("B", f"Time per step against B (H = I = {H_FOR_B})"),
    ):
        rows = sorted((r for r in recs if r["sweep"] == sweep), key=lambda r: (r["H"], r["B"]))
        if not rows:
            continue  # --only the other sweep
        head = [sweep, "T"]
        for name in names:
            n = name.split("@")[1]
            head += [f"fastrnn {n}t", "GFLOP/s", "÷ bound"]
        head += [f"torch {name.split('@')[1]}t" for name in torch_names]
        head += ["others' load"]
        lines = [
            f"### {title}",
            "",
            "| " + " | ".join(head) + " |",
            "|" + "|".join(["--:"] * len(head)) + "|",
        ]
        for r in rows:
            row = [str(r[sweep]), str(r["T"])]
            for name in names:
                n = int(name.split("@")[1])
                x = r["runners"].get(name)
                if x is None:
                    row += ["—", "—", "—"]
                    continue
                cell = _t(x["ns_per_step"])
                if (sweep, r["H"], r["B"], name) in flagged:
                    cell = f"**{cell}** ⚠"
                if r["threads_used"].get(str(n), n) < n:
                    cell += f" ({r['threads_used'][str(n)]}t)"
                bound = bound_ns(r["H"], r["B"], r["T"], lim, n, isa)
                ratio = f"{x['ns_per_step'] / bound:.2f}" if bound else "—"
                row += [cell, f"{x['gflops']:.1f}", ratio]
            for name in torch_names:
                x = r["runners"].get(name)
                row.append(_t(x["ns_per_step"]) if x else "—")
            loads = [v for v in r["others_load"] if v is not None]
            row.append(f"{100 * min(loads):.0f}%" if loads else "—")
            lines.append("| " + " | ".join(row) + " |")
        out.append("\n".join(lines))
    legend = (
        "Time per step: the fastest of the timed calls (T steps each; input projection "
        "included) ÷ T, since other processes only ever slow a call down; medians are in "
        "sweep.json. GFLOP/s = 2 · B · 4H · (I + H) per step ÷ time; ÷ bound: time ÷ "
        "limits.py's lower bound at that thread count (W_hh read from the smallest cache "
        "that holds it, or the FMA peak). (1t): fastrnn runs this shape on one thread even "
        f"when given two. ⚠: a cliff, time per multiply-add more than {CLIFF:g}× that of the "
        "previous point. others' load: the share of the cores other processes used while "
        "the point was timed (the quietest pass)."
    )
    out.append(legend)
    slow = as_one_thread_points(recs, thread_counts)
    if slow:
        total = sum(
            1
            for r in recs
            for n in thread_counts
            if n > 1 and r["threads_used"].get(str(n), 1) > 1 and f"fastrnn@{n}" in r["runners"]
        )
        out.append(
            f"**Multi-thread figures of this run are unreliable at {len(slow)} of {total} "
            "points** where fastrnn splits the work, 2 threads timed no faster than 1 "
            f"({', '.join(slow)}): every timed call there either ran on one thread (fastrnn's "
            "oversubscription back-off after a call that waited for a descheduled thread) or "
            "waited for a core another process held — see the others' load column. Time "
            "them again on a quiet machine; the 1-thread figures are not affected that way."
        )
    if doc["cliffs"]:
        lines = ["### Cliffs", ""]
        for f in doc["cliffs"]:
            what = "H" if f["sweep"] == "H" else "B"
            i = 0 if what == "H" else 1
            lines.append(
                f"- {f['runner'].replace('@', ' at ')} thread(s), {what} {f['previous'][i]} → "
                f"{f['at'][i]}: time per multiply-add ×{f['rise']:.2f}; the machine's bound "
                + (f"×{f['bound_rise']:.2f}" if f["bound_rise"] else "unknown (no limits)")
                + " → "
                + (
                    "explained by the memory hierarchy"
                    if f["explained"]
                    else "no faster than 1 thread there: the timed calls ran as one thread "
                    "(fastrnn's oversubscription back-off) or waited for a core another "
                    "process held; most likely the machine's noise, not the shape (time "
                    "it again on a quiet machine)"
                    if f.get("as_one_thread")
                    else "**not explained**"
                )
            )
        out.append("\n".join(lines))
    else:
        out.append(
            f"### Cliffs\n\nNone: between any two neighbouring points of either sweep, "
            f"fastrnn's time per multiply-add rises by at most {CLIFF:g}× (largest rise: "
            f"{doc['largest_rise']['rise']:.2f}×, {doc['largest_rise']['where']})."
        )
    return "\n\n".join(out)


def as_one_thread_points(recs: list, thread_counts) -> list:
    """["B=24@2t", ...]: points where fastrnn on n > 1 threads (and splitting the work) was
    timed no faster than on one thread."""
    out = []
    for r in recs:
        one = r["runners"].get("fastrnn@1")
        for n in thread_counts:
            x = r["runners"].get(f"fastrnn@{n}")
            if n > 1 and x and one and r["threads_used"].get(str(n), 1) > 1:
                if x["ns_per_step"] >= 0.95 * one["ns_per_step"]:
                    out.append(f"{r['sweep']}={r[r['sweep']]}@{n}t")
    return out


def largest_rise(records: dict, thread_counts) -> dict:
    best = {"rise": 0.0, "where": "—"}
    for sweep in ("H", "B"):
        recs = series(records, sweep)
        for n in thread_counts:
            name = f"fastrnn@{n}"
            for a, b in zip(recs, recs[1:]):
                ra, rb = a["runners"].get(name), b["runners"].get(name)
                if ra and rb:
                    rise = (rb["ns_per_step"] / b["macs_per_step"]) / (
                        ra["ns_per_step"] / a["macs_per_step"]
                    )
                    if rise > best["rise"]:
                        best = {
                            "rise": rise,
                            "where": f"{sweep} {a[sweep]} → {b[sweep]} at {n} thread(s)",
                        }
    return best


def plot(doc: dict, path: str) -> None:
    """Time per step (log-log) and GFLOP/s against H and against B."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    recs, thread_counts, lim = doc["records"], doc["threads"], doc["limits"]
    isa = doc["machine"]["fastrnn"]["isa"]
    flagged = {(f["sweep"], *f["at"], f["runner"]) for f in doc["cliffs"]}
    colors = {1: "tab:blue", 2: "tab:orange"}
    sweeps = [sw for sw in ("H", "B") if any(r["sweep"] == sw for r in recs)]
    fig, axes = plt.subplots(2, len(sweeps), figsize=(6 * len(sweeps), 8.5), squeeze=False)
    for col, sweep in enumerate(sweeps):
        rows = sorted((r for r in recs if r["sweep"] == sweep), key=lambda r: (r["H"], r["B"]))
        xs = [r[sweep] for r in rows]
        ax_t, ax_g = axes[0, col], axes[1, col]
        for n in thread_counts:
            c = colors.get(n)
            for peer, style in (("fastrnn", "-o"), ("torch", "--")):
                name = f"{peer}@{n}"
                pts = [(r[sweep], r["runners"][name]) for r in rows if name in r["runners"]]
                if not pts:
                    continue
                px = [p[0] for p in pts]
                kw = dict(color=c, markersize=3, alpha=1.0 if peer == "fastrnn" else 0.55)
                label = f"{peer}, {n} thread{'s' if n > 1 else ''}"
                ax_t.plot(px, [p[1]["ns_per_step"] / 1e3 for p in pts], style, label=label, **kw)
                ax_g.plot(px, [p[1]["gflops"] for p in pts], style, label=label, **kw)
                bad = [
                    (r[sweep], r["runners"][name])
                    for r in rows
                    if (sweep, r["H"], r["B"], name) in flagged
                ]
                if bad:
                    ax_t.plot(
                        [b[0] for b in bad],
                        [b[1]["ns_per_step"] / 1e3 for b in bad],
                        "o",
                        markersize=11,
                        markerfacecolor="none",
                        markeredgecolor="red",
                    )
            if lim is None:
                continue
            bounds = [bound_ns(r["H"], r["B"], r["T"], lim, n, isa) / 1e3 for r in rows]
            ax_t.plot(xs, bounds, ":", color=c, label=f"lower bound, {n} thread{'s' * (n > 1)}")
            peak = limits.fma_peak(lim, n, isa)
            ax_g.axhline(peak, color=c, linestyle=":", linewidth=0.8)
        ax_t.set_xscale("log")
        ax_t.set_yscale("log")
        ax_g.set_xscale("log")
        # Label the powers of two (and 1..8); odd sizes get a tick without a label, since
        # 96/100, 256/257 and 1000/1024 would print over each other on a log axis.
        labels = [str(v) if v & (v - 1) == 0 or v <= 8 else "" for v in xs]
        for ax in (ax_t, ax_g):
            ax.set_xticks(xs)
            ax.set_xticklabels(labels, fontsize=8)
            ax.minorticks_off()
            ax.grid(alpha=0.3)
        what = "H (B = 1, I = H)" if sweep == "H" else f"B (H = I = {H_FOR_B})"
        ax_t.set_title(f"LSTM time per step against {what}", fontsize=10)
        ax_t.set_ylabel("µs per step")
        ax_g.set_title(f"GFLOP/s against {what} (dotted: FMA peak)", fontsize=10)
        ax_g.set_ylabel("GFLOP/s")
        ax_g.set_xlabel(sweep)
        if sweep == "H" and lim is not None:
            caches = lim["caches"]
            for level, size in (("L2", caches["L2"]), ("L3", caches["L3"])):
                h = math.sqrt(size / 16)  # W_hh of an LSTM: 4H·H floats = 16·H² bytes
                for ax in (ax_t, ax_g):
                    ax.axvline(h, color="grey", linewidth=0.7)
                ax_t.text(h, ax_t.get_ylim()[1], f" W_hh > {level}", fontsize=7, va="top")
        ax_t.legend(fontsize=7)
    fig.suptitle("fastrnn sweep (red rings: cliffs)", fontsize=11)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def write_readme(markdown: str) -> bool:
    return _bench.section_replace(
        os.path.join(HERE, "README.md"), "<!-- sweep:begin -->", "<!-- sweep:end -->", markdown
    )


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--threads", nargs="+", type=int, help="thread counts (default: 1 2)")
    p.add_argument("--only", choices=["H", "B"], help="one sweep only")
    p.add_argument(
        "--sizes",
        nargs="+",
        type=int,
        metavar="N",
        help="only these points of the sweep(s): values of H (H sweep) or B (B sweep)",
    )
    p.add_argument("--no-torch", action="store_true", help="fastrnn alone")
    p.add_argument("--target-ms", type=float, default=2.0, help="time of one fastrnn call")
    p.add_argument("--rounds", type=int, help="timed calls per runner and pass (default: 15)")
    p.add_argument(
        "--wait-quiet",
        type=float,
        metavar="S",
        help="before each point, wait up to S s (default 1) for other processes to leave the "
        "cores alone",
    )
    p.add_argument("--recheck", type=int, help="passes over flagged points (default: 2)")
    p.add_argument("--out", help="directory for sweep.json/.md/.png (default: bench/)")
    p.add_argument("--no-readme", action="store_true", help="leave bench/README.md alone")
    p.add_argument(
        "--quick",
        action="store_true",
        help=f"a smoke run: H = {' and '.join(map(str, QUICK_SIZES))} at 1 thread (unless "
        "--only, --sizes, --threads), 3 rounds, no recheck, no waiting; into a temporary "
        "directory (unless --out), bench/README.md left alone",
    )
    p.add_argument(
        "--render",
        metavar="JSON",
        help="time nothing: write the outputs again from this sweep.json (e.g. after a change "
        "to the tables or the chart)",
    )
    args = p.parse_args(argv)
    say = _bench.print_progress
    if args.quick:
        if args.only is None and args.sizes is None:
            args.only, args.sizes = "H", list(QUICK_SIZES)
        args.threads = args.threads or [1]
        args.rounds = args.rounds or 3
        args.recheck = 0 if args.recheck is None else args.recheck
        args.wait_quiet = 0.0 if args.wait_quiet is None else args.wait_quiet
        args.out = args.out or tempfile.mkdtemp(prefix="fastrnn-sweep-")
        args.no_readme = True
    args.threads = args.threads or [1, 2]
    args.rounds = args.rounds or 15
    args.recheck = 2 if args.recheck is None else args.recheck
    args.wait_quiet = 1.0 if args.wait_quiet is None else args.wait_quiet
    args.out = args.out or HERE
    if args.render:
        return render(args.render, args, say)
    torch_mod = None if args.no_torch else _bench._try_import("torch")
    try:
        lim = limits.load_or_measure(False, args.threads, say, 1 if args.quick else limits.REPEAT)
    except limits.NoCompiler as e:
        say(f"no lower bounds: {e}")
        lim = None
    isa = _bench.machine_info()["fastrnn"]["isa"]
    threads = list(args.threads)

    start = time.perf_counter()
    points = []
    if args.only in (None, "H"):
        sizes = [H for H in H_SWEEP if args.sizes is None or H in args.sizes]
        points += [Point("H", H, 1, torch_mod) for H in sizes]
    if args.only in (None, "B"):
        sizes = [B for B in B_SWEEP if args.sizes is None or B in args.sizes]
        points += [Point("B", H_FOR_B, B, torch_mod) for B in sizes]
    if not points:
        p.error(f"--sizes {args.sizes}: none is a point of the sweep(s)")
    for q in points:
        q.calibrate(args.target_ms / 1e3)
    by_key = {(q.sweep, q.H, q.B): q for q in points}
    records = measure(
        points, threads, torch_mod is not None, args.rounds, torch_mod, say, args.wait_quiet
    )
    checked = []
    for k in range(args.recheck):
        flags = find_cliffs(records, threads, lim, isa)
        if not flags:
            break
        again = flagged_points(flags, by_key)
        say(
            f"recheck {k + 1}/{args.recheck}: {len(flags)} flag(s); timing {len(again)} points again"
        )
        checked.append([[q.sweep, q.H, q.B] for q in again])
        measure(again, threads, False, args.rounds, torch_mod, say, args.wait_quiet, records)
    seconds = time.perf_counter() - start

    recs = sorted(records.values(), key=lambda r: (r["sweep"], r["H"], r["B"]))
    machine = _bench.machine_info()
    command = " ".join(["python bench/sweep.py", *sys.argv[1:]])
    doc = {
        "date": datetime.date.today().isoformat(),
        "command": command,
        "seconds": seconds,
        "machine": machine,
        "threads": threads,
        "limits": lim,
        "cliff_threshold": CLIFF,
        "rechecked": checked,
        "records": recs,
        "cliffs": find_cliffs(records, threads, lim, isa),
        "largest_rise": largest_rise(records, threads),
    }
    write_outputs(doc, args, say)
    return 0


def write_outputs(doc: dict, args, say) -> None:
    """sweep.json, sweep.md, sweep.png in args.out, and the tables into bench/README.md."""
    machine, seconds = doc["machine"], doc["seconds"]
    info = machine["fastrnn"]
    with_torch = any(k.startswith("torch") for r in doc["records"] for k in r["runners"])
    header = (
        f"Run {doc['date']} with `{doc['command']}` ({seconds / 60:.1f} min): {machine['cpu']}, "
        f"{machine['logical_cpus']} logical CPUs, fastrnn {info['version']} ({info['isa']})"
        + (f", torch {machine['peers']['torch']}" if with_torch else "")
        + ". One-layer LSTM, I = H, zero initial state."
    )
    markdown = header + "\n\n" + format_markdown(doc) + "\n\n![sweep](sweep.png)"
    os.makedirs(args.out, exist_ok=True)
    paths = [os.path.join(args.out, f"sweep.{ext}") for ext in ("json", "md", "png")]
    with open(paths[0], "w", encoding="utf-8") as f:
        json.dump(doc, f, indent=1, ensure_ascii=False)
    with open(paths[1], "w", encoding="utf-8") as f:
        f.write("# Sweep: time per step against H and B\n\n" + markdown + "\n")
    try:
        plot(doc, paths[2])
    except ImportError:
        paths.pop()
        say("no chart: matplotlib is not installed")
    if not args.no_readme and os.path.abspath(args.out) == HERE and write_readme(markdown):
        paths.append(os.path.join(HERE, "README.md"))
    print(format_markdown(doc))
    print("\nwrote " + ", ".join(paths))


def render(path: str, args, say) -> int:
    """Writes the outputs again from a sweep.json, with this file's flags and formatting."""
    with open(path, encoding="utf-8") as f:
        doc = json.load(f)
    records = {(r["sweep"], r["H"], r["B"]): r for r in doc["records"]}
    isa = doc["machine"]["fastrnn"]["isa"]
    doc["cliffs"] = find_cliffs(records, doc["threads"], doc["limits"], isa)
    doc["largest_rise"] = largest_rise(records, doc["threads"])
    write_outputs(doc, args, say)
    return 0


if __name__ == "__main__":
    sys.exit(main())
