"""Batch-inference throughput on one machine: one local process against the Ray Data and
Dask recipes of docs/distributed.md, on the same data and model.

    python bench/distributed.py                 # the default job (~1 min on 2 cores)
    python bench/distributed.py --quick         # a tiny run that checks the script end to end
    python bench/distributed.py --markdown out.md

Engines: local = one process calling BatchPredictor batch by batch, with fastrnn's thread
budget (every core); ray = map_batches over an actor pool of --workers actors, each
num_cpus = cores / workers (Ray sets OMP_NUM_THREADS from it); dask = client.map over a
LocalCluster of --workers processes, cores / workers threads each. A round times the whole
job from data in memory (Ray: in the object store) to every output back: Ray's includes
starting its actor pool and loading the model, as every Ray Data job does; Dask's cluster
and the model in its workers persist from round to round, as in a long-lived client.
Rounds alternate the engines; the table gives the median sequences/s. Before timing, each
engine's outputs are checked bit for bit against the local ones.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
# This file's own name shadows the `distributed` package when its folder is on sys.path
# (python bench/distributed.py puts it first): drop it; use the checkout's fastrnn if built.
sys.path[:] = [p for p in sys.path if os.path.abspath(p or ".") != HERE]
sys.path.insert(0, os.path.join(HERE, "..", "python"))

import numpy as np

import fastrnn
from fastrnn._batch import BatchPredictor


def cpu_name() -> str:
    """lscpu's model name (or /proc/cpuinfo's), for the table's caption."""
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True, check=True).stdout
        for line in out.splitlines():
            if line.startswith("Model name:"):
                return line.split(":", 1)[1].strip()
    except (OSError, subprocess.CalledProcessError):
        pass
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return "unknown CPU"


def run_local(path, x, batch):
    predict = BatchPredictor(path)
    return [predict({"x": x[s : s + batch]})["y"] for s in range(0, len(x), batch)]


class RayEngine:
    def __init__(self, path, x, batch, workers, cores):
        import ray

        os.environ["PYTHONPATH"] = os.pathsep.join(
            p
            for p in (
                os.path.dirname(os.path.dirname(fastrnn.__file__)),
                os.environ.get("PYTHONPATH"),
            )
            if p
        )
        ray.init(
            num_cpus=cores, include_dashboard=False, log_to_driver=False, configure_logging=False
        )
        ray.data.DataContext.get_current().enable_progress_bars = False
        self.ray, self.path, self.batch, self.workers = ray, path, batch, workers
        self.cpus = cores / workers
        blocks = np.array_split(x, max(1, len(x) // batch))  # one block per batch
        self.ds = ray.data.from_numpy(blocks).rename_columns({"data": "x"}).materialize()

    def __call__(self):
        ds = self.ds.map_batches(
            BatchPredictor,
            fn_constructor_args=(self.path,),
            batch_size=self.batch,
            batch_format="numpy",
            compute=self.ray.data.ActorPoolStrategy(size=self.workers),
            num_cpus=self.cpus,
        )
        return [b["y"] for b in ds.iter_batches(batch_size=None, batch_format="numpy")]

    def close(self):
        self.ray.shutdown()


class DaskEngine:
    def __init__(self, path, x, batch, workers, cores):
        import distributed

        self.cluster = distributed.LocalCluster(
            n_workers=workers,
            threads_per_worker=max(1, cores // workers),
            processes=True,
            dashboard_address=None,
        )
        self.client = distributed.Client(self.cluster)
        self.predict = BatchPredictor(path)
        self.batches = [{"x": x[s : s + batch]} for s in range(0, len(x), batch)]

    def __call__(self):
        futures = self.client.map(self.predict, self.batches, pure=False)
        return [o["y"] for o in self.client.gather(futures)]

    def close(self):
        self.client.close()
        self.cluster.close()


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument(
        "--quick", action="store_true", help="a tiny run: checks the script, times nothing useful"
    )
    p.add_argument("--sequences", type=int, default=20000)
    p.add_argument("--steps", type=int, default=100)
    p.add_argument("--input-size", type=int, default=64)
    p.add_argument("--hidden-size", type=int, default=128)
    p.add_argument("--batch-size", type=int, default=256)
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--workers", type=int, default=None, help="engine workers (default: every core)")
    p.add_argument(
        "--engines", nargs="+", default=["local", "ray", "dask"], choices=["local", "ray", "dask"]
    )
    p.add_argument("--markdown", help="also write the table to this file")
    a = p.parse_args(argv)
    if a.quick:
        a.sequences, a.steps, a.input_size, a.hidden_size, a.batch_size, a.rounds = (
            256,
            20,
            8,
            16,
            64,
            1,
        )
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    workers = a.workers or cores
    rng = np.random.default_rng(0)
    x = rng.standard_normal((a.sequences, a.steps, a.input_size), dtype=np.float32)
    model = fastrnn.LSTM(a.input_size, a.hidden_size, seed=0)
    tmp = tempfile.mkdtemp(prefix="fastrnn-bench-")
    path = os.path.join(tmp, "lstm.safetensors")
    model.save(path)

    want = np.concatenate(run_local(path, x, a.batch_size))
    engines = {"local": lambda: run_local(path, x, a.batch_size)}
    closers = []
    try:
        for name, cls in (("ray", RayEngine), ("dask", DaskEngine)):
            if name in a.engines:
                try:
                    engine = cls(path, x, a.batch_size, workers, cores)
                except ImportError as e:
                    print(f"{name}: skipped ({e})", file=sys.stderr)
                    continue
                closers.append(engine.close)
                engines[name] = engine
        engines = {k: v for k, v in engines.items() if k in a.engines}
        for name, run in engines.items():  # warm-up and the bit-for-bit check
            got = np.concatenate(run())
            if name != "local":  # Ray may return batches in any order: compare as a set of rows
                got = got[np.lexsort(got.reshape(len(got), -1).T[::-1])]
                ref = want[np.lexsort(want.reshape(len(want), -1).T[::-1])]
            else:
                ref = want
            if not np.array_equal(got, ref):
                print(f"{name}: outputs differ from the local run", file=sys.stderr)
                return 1
        times = {k: [] for k in engines}
        for r in range(a.rounds):
            for name, run in engines.items():
                t0 = time.perf_counter()
                run()
                times[name].append(time.perf_counter() - t0)
                print(f"round {r + 1}/{a.rounds} {name}: {times[name][-1]:.2f} s", file=sys.stderr)
    finally:
        for close in closers:
            close()

    layout = {
        "local": f"1 process x {fastrnn.get_num_threads()} threads",
        "ray": f"{workers} actors x {cores / workers:g} CPU",
        "dask": f"{workers} processes x {max(1, cores // workers)} thread",
    }
    base = a.sequences / statistics.median(times["local"]) if "local" in times else None
    lines = [
        f"LSTM({a.input_size}, {a.hidden_size}), {a.sequences} sequences of {a.steps} steps, "
        f"batches of {a.batch_size}; {cpu_name()}, {cores} cores, {fastrnn.cpu_info()['isa']}; "
        f"median of {a.rounds} rounds",
        "",
        "| engine | layout | sequences/s | min-max | vs local |",
        "|---|---|--:|--:|--:|",
    ]
    for name, ts in times.items():
        rates = sorted(a.sequences / t for t in ts)
        med = statistics.median(rates)
        ratio = f"{med / base:.2f}x" if base else "-"
        lines.append(
            f"| {name} | {layout[name]} | {med:,.0f} | {rates[0]:,.0f}-{rates[-1]:,.0f} | {ratio} |"
        )
    text = "\n".join(lines)
    print(text)
    if a.markdown:
        with open(a.markdown, "w") as f:
            f.write(text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
