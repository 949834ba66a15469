"""Many Python threads calling one model at once get exactly the serial results (the GIL is
released during compute and a model is immutable between load_state_dict calls)."""

import random
import threading

import numpy as np
import pytest

import fastrnn

THREADS = 10
CALLS_PER_THREAD = 40

MODELS = [
    lambda: fastrnn.LSTM(16, 64, num_layers=2, seed=0),
    lambda: fastrnn.LSTM(8, 40, proj_size=12, bidirectional=True, seed=1),
    lambda: fastrnn.GRU(16, 33, num_layers=2, bidirectional=True, batch_first=True, seed=2),
    lambda: fastrnn.RNN(16, 17, nonlinearity="relu", seed=3),
    lambda: fastrnn.RNN(7, 65, num_layers=3, seed=4),
]
IDS = ["lstm", "lstm-proj-bi", "gru-bi-bf", "rnn-relu", "rnn-3"]


def flat(out):
    arrays = []
    for a in out if isinstance(out, tuple) else (out,):
        arrays.extend(a if isinstance(a, tuple) else (a,))
    return arrays


def make_jobs(model, rng, n):
    """n calls with mixed shapes: T, batch, unbatched, initial states, lengths."""
    jobs = []
    for _ in range(n):
        T = int(rng.integers(1, 24))
        B = int(rng.integers(0, 6))  # 0: unbatched
        I = model.input_size
        if B == 0:
            x = rng.standard_normal((T, I)).astype(np.float32)
            lengths = None
        else:
            x = rng.standard_normal((B, T, I) if model.batch_first else (T, B, I)).astype(
                np.float32
            )
            lengths = rng.integers(1, T + 1, size=B) if rng.random() < 0.5 else None
        state = None
        if rng.random() < 0.5:
            LD = model.num_layers * model.num_directions
            lead = (LD,) if B == 0 else (LD, B)
            h = rng.standard_normal(lead + (model.proj_size or model.hidden_size,)).astype(
                np.float32
            )
            c = rng.standard_normal(lead + (model.hidden_size,)).astype(np.float32)
            state = (h, c) if model.mode == "LSTM" else h
        jobs.append((x, state, lengths))
    return jobs


def run_threads(worker, n):
    barrier = threading.Barrier(n)
    errors = []

    def target(i):
        try:
            barrier.wait()
            worker(i)
        except BaseException as e:  # reported by the main thread
            errors.append(e)

    threads = [threading.Thread(target=target, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if errors:
        raise errors[0]


@pytest.fixture(params=[1, 2], ids=["1-core-thread", "2-core-threads"])
def core_threads(request):
    before = fastrnn.get_num_threads()
    fastrnn.set_num_threads(request.param)
    yield request.param
    fastrnn.set_num_threads(before)


@pytest.mark.parametrize("make", MODELS, ids=IDS)
def test_threads_get_serial_results(make, core_threads):
    model = make()
    rng = np.random.default_rng(0)
    jobs = make_jobs(model, rng, 30)
    serial = [flat(model(x, s, lengths=lens)) for x, s, lens in jobs]
    results = [[None] * CALLS_PER_THREAD for _ in range(THREADS)]
    orders = [
        [random.Random(i * 1000 + k).randrange(len(jobs)) for k in range(CALLS_PER_THREAD)]
        for i in range(THREADS)
    ]

    def worker(i):
        for k, j in enumerate(orders[i]):
            x, s, lens = jobs[j]
            results[i][k] = flat(model(x, s, lengths=lens))

    run_threads(worker, THREADS)
    for i in range(THREADS):
        for k, j in enumerate(orders[i]):
            got, expected = results[i][k], serial[j]
            assert len(got) == len(expected)
            for g, e in zip(got, expected):
                assert g.shape == e.shape and np.array_equal(g, e), (i, k, j)


@pytest.mark.parametrize(
    "make",
    [
        lambda: fastrnn.LSTMCell(16, 32, seed=0),
        lambda: fastrnn.GRUCell(16, 33, seed=1),
        lambda: fastrnn.RNNCell(16, 17, nonlinearity="relu", seed=2),
    ],
    ids=["lstmcell", "grucell", "rnncell"],
)
def test_threads_on_cells(make):
    cell = make()
    rng = np.random.default_rng(1)
    xs = [rng.standard_normal((int(rng.integers(1, 6)), 16)).astype(np.float32) for _ in range(20)]
    xs += [rng.standard_normal(16).astype(np.float32) for _ in range(5)]
    serial = [flat(cell(x)) for x in xs]
    results = {}

    def worker(i):
        for k in range(CALLS_PER_THREAD):
            j = (i * 7 + k) % len(xs)
            results[i, k] = (j, flat(cell(xs[j])))

    run_threads(worker, THREADS)
    for j, got in results.values():
        for g, e in zip(got, serial[j]):
            assert np.array_equal(g, e)


@pytest.mark.parametrize(
    "make",
    [MODELS[0], MODELS[3], lambda: fastrnn.GRU(16, 33, num_layers=2, seed=5)],
    ids=["lstm", "rnn-relu", "gru"],
)
def test_one_stream_per_thread_on_a_shared_model(make):
    model = make()
    rng = np.random.default_rng(2)
    sequences = [
        rng.standard_normal((30, 2, model.input_size)).astype(np.float32) for _ in range(THREADS)
    ]
    expected = [flat(model(x)) for x in sequences]
    got = [None] * THREADS

    def worker(i):
        stream = model.stream(batch=2)
        y = np.stack([stream.step(x_t) for x_t in sequences[i]])
        got[i] = [y] + flat(stream.state)

    run_threads(worker, THREADS)
    for g, e in zip(got, expected):
        for a, b in zip(g, e):
            assert np.array_equal(a, b)
