"""Many Python threads calling one model at once get exactly the serial results (the GIL is
released during compute and a model is immutable between load_state_dict calls).

Under load: 16 threads × 200 calls over models of every type (LSTM, LSTM with projection,
GRU, RNN tanh/relu, bidirectional, batch_first, cells) with mixed shapes, states and
lengths, each thread also stepping its own stream, with 1 and with 2 core threads; and the
same while another thread switches set_num_threads between 1 and 2 the whole time. Every
result must equal the serial one exactly (np.array_equal)."""

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
        except BaseException as e:  # noqa: BLE001 - re-raised by the main thread
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


# --- under load: 16 threads, every cell type, streams, and set_num_threads meanwhile -----------

HEAVY_THREADS = 16
HEAVY_CALLS = 200  # per thread, plus one stream of STREAM_STEPS steps per thread
STREAM_STEPS = 100

HEAVY_MODELS = [
    lambda: fastrnn.LSTM(16, 64, num_layers=2, seed=10),
    lambda: fastrnn.LSTM(8, 40, proj_size=12, bidirectional=True, seed=11),
    lambda: fastrnn.GRU(16, 33, num_layers=2, bidirectional=True, batch_first=True, seed=12),
    lambda: fastrnn.GRU(16, 256, seed=13),  # 2 core threads even at B = 1
    lambda: fastrnn.RNN(16, 17, nonlinearity="relu", seed=14),
    lambda: fastrnn.RNN(7, 65, num_layers=3, seed=15),
    lambda: fastrnn.LSTMCell(16, 32, seed=16),
    lambda: fastrnn.GRUCell(16, 33, seed=17),
    lambda: fastrnn.RNNCell(16, 17, nonlinearity="relu", seed=18),
]


def cell_jobs(cell, rng, n):
    jobs = []
    for _ in range(n):
        B = int(rng.integers(0, 6))
        x = rng.standard_normal((B, cell.input_size) if B else (cell.input_size,))
        x = x.astype(np.float32)
        state = None
        if rng.random() < 0.5:
            shape = x.shape[:-1] + (cell.hidden_size,)
            h = rng.standard_normal(shape).astype(np.float32)
            state = (
                (h, rng.standard_normal(shape).astype(np.float32))
                if isinstance(cell, fastrnn.LSTMCell)
                else h
            )
        jobs.append((x, state, None))
    return jobs


def call(model, job):
    x, state, lengths = job
    if isinstance(model, (fastrnn.LSTMCell, fastrnn.GRUCell, fastrnn.RNNCell)):
        return flat(model(x, state))
    return flat(model(x, state, lengths=lengths))


@pytest.fixture(scope="module")
def heavy_setup():
    """Models of every type, 12 jobs each, and the serial results of every job."""
    rng = np.random.default_rng(3)
    models = [make() for make in HEAVY_MODELS]
    jobs = []
    for i, m in enumerate(models):
        made = (
            cell_jobs(m, rng, 12)
            if isinstance(m, (fastrnn.LSTMCell, fastrnn.GRUCell, fastrnn.RNNCell))
            else make_jobs(m, rng, 12)
        )
        jobs.extend((i, job) for job in made)
    serial = [call(models[i], job) for i, job in jobs]
    # One stream per thread, on the unidirectional models in turn, each its own sequence.
    stream_models = [m for m in models[:6] if not m.bidirectional]
    sequences = []
    for t in range(HEAVY_THREADS):
        m = stream_models[t % len(stream_models)]
        x = rng.standard_normal((STREAM_STEPS, 2, m.input_size)).astype(np.float32)
        sequences.append((m, x, flat(m(x.transpose(1, 0, 2) if m.batch_first else x))))
    return models, jobs, serial, sequences


def heavy_worker(models, jobs, sequences, results, stream_results):
    def worker(i):
        order = random.Random(100 + i)
        stream_model, x, _ = sequences[i]
        stream = stream_model.stream(batch=2)
        ys = []
        for k in range(HEAVY_CALLS):
            j = order.randrange(len(jobs))
            m_index, job = jobs[j]
            results[i][k] = (j, call(models[m_index], job))
            # interleave this thread's stream with its calls
            ys.extend(
                stream.step(x_t)
                for x_t in x[
                    k * STREAM_STEPS // HEAVY_CALLS : (k + 1) * STREAM_STEPS // HEAVY_CALLS
                ]
            )
        stream_results[i] = [np.stack(ys)] + flat(stream.state)

    return worker


def check_heavy(jobs, serial, sequences, results, stream_results):
    calls = 0
    for i in range(HEAVY_THREADS):
        for j, got in results[i]:
            expected = serial[j]
            assert len(got) == len(expected)
            for g, e in zip(got, expected):
                assert g.shape == e.shape and np.array_equal(g, e), (i, j)
            calls += 1
        m, _, want = sequences[i]
        y = want[0].transpose(1, 0, 2) if m.batch_first else want[0]
        for g, e in zip(stream_results[i], [y] + want[1:]):
            assert np.array_equal(g, e), ("stream", i)
    assert calls == HEAVY_THREADS * HEAVY_CALLS


def test_16_threads_mixed_models_and_streams(heavy_setup, core_threads):
    """16 Python threads × 200 calls over 9 models of every type (layers, cells, projection,
    bidirectional, batch_first), mixed shapes, states and lengths, each thread also stepping
    its own stream: every result equals the serial one exactly."""
    models, jobs, serial, sequences = heavy_setup
    results = [[None] * HEAVY_CALLS for _ in range(HEAVY_THREADS)]
    stream_results = [None] * HEAVY_THREADS
    run_threads(heavy_worker(models, jobs, sequences, results, stream_results), HEAVY_THREADS)
    check_heavy(jobs, serial, sequences, results, stream_results)


def test_set_num_threads_while_calls_run(heavy_setup, threads_restored):
    """Another thread switches set_num_threads between 1 and 2 as fast as it can while the
    16 threads run: safe, and the results stay bit-identical (1 and 2 core threads give the
    same bits, test_threads.py)."""
    models, jobs, serial, sequences = heavy_setup
    results = [[None] * HEAVY_CALLS for _ in range(HEAVY_THREADS)]
    stream_results = [None] * HEAVY_THREADS
    stop = threading.Event()
    switches = [0]

    def toggler():
        n = 0
        while not stop.is_set():
            fastrnn.set_num_threads(1 + n % 2)
            assert fastrnn.get_num_threads() in (1, 2)
            n += 1
        switches[0] = n

    t = threading.Thread(target=toggler)
    t.start()
    try:
        run_threads(heavy_worker(models, jobs, sequences, results, stream_results), HEAVY_THREADS)
    finally:
        stop.set()
        t.join()
    assert switches[0] > 10
    print(f"set_num_threads switched {switches[0]} times during the calls")
    check_heavy(jobs, serial, sequences, results, stream_results)


def test_load_state_dict_while_calls_run():
    """One thread swaps a model's weights between two sets while 8 threads call it: each
    call runs wholly on one set (a call keeps the packed weights it started with alive), so
    every result equals exactly one of the two serial results."""
    model = fastrnn.LSTM(16, 64, num_layers=2, seed=20)
    weights = [model.state_dict(), fastrnn.LSTM(16, 64, num_layers=2, seed=21).state_dict()]
    rng = np.random.default_rng(5)
    xs = [rng.standard_normal((12, 3, 16)).astype(np.float32) for _ in range(6)]
    serial = []
    for w in weights:
        model.load_state_dict(w)
        serial.append([flat(model(x)) for x in xs])
    results = [[] for _ in range(8)]
    stop = threading.Event()
    swaps = [0]

    def swapper():
        n = 0
        while not stop.is_set():
            model.load_state_dict(weights[n % 2])
            n += 1
        swaps[0] = n

    def worker(i):
        for k in range(150):
            j = (i + k) % len(xs)
            results[i].append((j, flat(model(xs[j]))))

    t = threading.Thread(target=swapper)
    t.start()
    try:
        run_threads(worker, 8)
    finally:
        stop.set()
        t.join()
    assert swaps[0] > 2
    counts = [0, 0]
    for per_thread in results:
        for j, got in per_thread:
            matches = [
                s for s in (0, 1) if all(np.array_equal(g, e) for g, e in zip(got, serial[s][j]))
            ]
            assert len(matches) == 1, (j, matches)
            counts[matches[0]] += 1
    print(f"{swaps[0]} swaps; results per weight set: {counts}")
