"""fastrnn predict MODEL INPUT -o OUTPUT: a model over a file of sequences, in batches.

Formats by suffix: .npy, .npz, .parquet/.pq, .arrow/.feather/.ipc (Arrow IPC file); the
schemas are in docs/distributed.md and fastrnn._batch.predict_file. Streams through the
input a batch at a time, writes the output under a temporary name in its directory and
renames it into place only when complete. A progress bar (rows, rows/s, ETA) goes to
stderr when stderr is a terminal, unless --quiet. Exit code 0: written; 2: the model, the
input or the output is unusable (the reason on stderr, nothing written); 130 / 143:
interrupted by SIGINT / SIGTERM (nothing written).
"""

from __future__ import annotations

import shutil
import signal
import sys
import threading
import time

from .common import dtype_add, fail, hints_add, model_load, positive_int


def register(sub) -> None:
    p = sub.add_parser(
        "predict",
        help="run a model over a file of sequences (.npy, .npz, Parquet, Arrow)",
        description="Runs MODEL over every sequence in INPUT and writes the outputs and "
        "final states to OUTPUT, streaming a batch at a time in bounded memory. Formats "
        "by suffix: .npy (x (N, T, I), batch-first), .npz (x and optional lengths (N,)), "
        ".parquet/.pq and .arrow/.feather/.ipc (a column x holding one sequence per row as "
        "a list of steps, each a list of I floats; an optional integer column lengths). "
        "OUTPUT: .npy holds y (N, T, D*H_out); .npz y, h_n (N, L*D, H_out), c_n (LSTM) "
        "and lengths; Parquet/Arrow the kept columns, y (each row's valid steps), h_n, c_n. "
        "OUTPUT appears only when complete.",
    )
    p.add_argument("model", metavar="MODEL", help="the model file (anything fastrnn.load reads)")
    p.add_argument("input", metavar="INPUT", help="the sequences")
    p.add_argument("-o", "--output", required=True, metavar="OUTPUT", help="the file to write")
    p.add_argument(
        "--batch-size",
        type=positive_int,
        metavar="ROWS",
        help="sequences per model call (default: as many as fit 64 MiB of padded input and "
        "output, at most 1024)",
    )
    p.add_argument(
        "--threads",
        type=positive_int,
        metavar="N",
        help="threads per model call (default: fastrnn's budget: FASTRNN_NUM_THREADS, "
        "OMP_NUM_THREADS, the affinity mask, the cgroup quota)",
    )
    dtype_add(p, "weight precision: the model file's own (default), or float32, bf16, int8, int7")
    p.add_argument(
        "--x-key",
        default="x",
        metavar="NAME",
        help="npz member / column of the sequences (default x)",
    )
    p.add_argument(
        "--lengths-key",
        default="lengths",
        metavar="NAME",
        help="npz member / column of the lengths, used when present (default lengths)",
    )
    p.add_argument(
        "--keep",
        nargs="+",
        default=[],
        metavar="COLUMN",
        help="Parquet/Arrow input columns to copy to a Parquet/Arrow output (e.g. ids)",
    )
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bar and no summary")
    hints_add(p)
    p.set_defaults(func=run)


class _Terminated(Exception):
    """SIGTERM, turned into an exception so that the temporary output is removed."""


def run(args) -> int:
    from .._batch import predict_file

    model, code = model_load("predict", args, args.model)
    if model is None:
        return code
    bar = Progress(sys.stderr, enabled=not args.quiet and _isatty(sys.stderr))
    restore = _on_sigterm_raise()
    try:
        summary = predict_file(
            model,
            args.input,
            args.output,
            batch_size=args.batch_size,
            threads=args.threads,
            dtype=args.dtype,
            x_key=args.x_key,
            lengths_key=args.lengths_key,
            keep=args.keep,
            progress=bar.update,
        )
    except (ValueError, OSError) as e:
        bar.close()
        return fail("predict", f"{e}; {args.output} not written")
    except KeyboardInterrupt:
        bar.close()
        print(f"fastrnn predict: interrupted; {args.output} not written", file=sys.stderr)
        return 130
    except _Terminated:
        bar.close()
        print(f"fastrnn predict: terminated; {args.output} not written", file=sys.stderr)
        return 143
    finally:
        restore()
    bar.close()
    if not args.quiet:
        rate = summary.rows / summary.seconds if summary.seconds > 0 else 0.0
        print(
            f"wrote {summary.output}: {summary.rows:,} sequences in {summary.seconds:.1f} s "
            f"({rate:,.0f} sequences/s, {summary.batches} batches)"
        )
    return 0


def _isatty(stream) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False


def _on_sigterm_raise():
    """Makes SIGTERM raise _Terminated (main thread only); returns the undo."""
    if threading.current_thread() is not threading.main_thread():
        return lambda: None

    def handler(signum, frame):
        raise _Terminated()

    previous = signal.signal(signal.SIGTERM, handler)
    return lambda: signal.signal(signal.SIGTERM, previous)


class Progress:
    """A one-line progress bar on a terminal: `[#####-----]  45%  45,056/100,000 rows
    12,345 rows/s  ETA 0:04`, redrawn at most every 0.1 s (and at the end); the rate is
    the average since the start. Disabled, it prints nothing."""

    _INTERVAL = 0.1  # seconds between redraws: smooth to the eye, negligible cost

    def __init__(self, stream, enabled: bool) -> None:
        self._stream, self._enabled = stream, enabled
        self._t0 = time.perf_counter()
        self._last = 0.0
        self._drawn = False

    def update(self, done: int, total: int) -> None:
        if not self._enabled:
            return
        now = time.perf_counter()
        if now - self._last < self._INTERVAL and done < total:
            return
        self._last = now
        elapsed = now - self._t0
        rate = done / elapsed if elapsed > 0 else 0.0
        eta = _clock((total - done) / rate) if rate > 0 else "?"
        frac = done / total if total else 1.0
        tail = f" {frac:4.0%}  {done:,}/{total:,} rows  {rate:,.0f} rows/s  ETA {eta}"
        width = shutil.get_terminal_size((80, 24)).columns
        cells = max(10, min(40, width - len(tail) - 3))
        full = int(frac * cells)
        line = "[" + "#" * full + "-" * (cells - full) + "]" + tail
        self._stream.write("\r" + line[: width - 1])
        self._stream.flush()
        self._drawn = True

    def close(self) -> None:
        if self._drawn:
            self._stream.write("\n")
            self._stream.flush()
            self._drawn = False


def _clock(seconds: float) -> str:
    """90 → '1:30', 3725 → '1:02:05'."""
    s = int(seconds + 0.5)
    h, m = divmod(s, 3600)
    m, s = divmod(m, 60)
    return f"{h}:{m:02d}:{s:02d}" if h else f"{m}:{s:02d}"
