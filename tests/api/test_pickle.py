"""Models, cells and streams pickle and unpickle to identical behaviour, also across
processes (multiprocessing with the spawn start method)."""

import copy
import multiprocessing
import pickle

import numpy as np
import pytest

import fastrnn

MODELS = [
    lambda: fastrnn.LSTM(5, 7, num_layers=2, proj_size=3, batch_first=True, seed=0),
    lambda: fastrnn.LSTM(4, 6, bidirectional=True, bias=False, seed=1),
    lambda: fastrnn.GRU(5, 7, num_layers=2, seed=2),
    lambda: fastrnn.RNN(5, 7, nonlinearity="relu", bidirectional=True, seed=3),
    lambda: fastrnn.LSTMCell(5, 7, seed=4),
    lambda: fastrnn.GRUCell(5, 7, bias=False, seed=5),
    lambda: fastrnn.RNNCell(5, 7, nonlinearity="relu", seed=6),
]
IDS = ["lstm", "lstm-bi", "gru", "rnn-relu-bi", "lstmcell", "grucell", "rnncell"]


def is_cell(model):
    return isinstance(model, (fastrnn.LSTMCell, fastrnn.GRUCell, fastrnn.RNNCell))


def sample_input(model, seed=0):
    rng = np.random.default_rng(seed)
    shape = (3, model.input_size) if is_cell(model) else (6, 3, model.input_size)
    return rng.standard_normal(shape).astype(np.float32)


def flat(out):
    arrays = []
    for a in out if isinstance(out, tuple) else (out,):
        arrays.extend(a if isinstance(a, tuple) else (a,))
    return arrays


def run(model, x):
    """Top-level so that spawned workers can unpickle a reference to it."""
    return flat(model(x))


def run_stream(stream, xs):
    return [stream.step(x) for x in xs], stream.state


def assert_same(a, b):
    assert len(a) == len(b)
    for u, v in zip(a, b):
        assert u.shape == v.shape and np.array_equal(u, v)


@pytest.mark.parametrize("protocol", [2, pickle.HIGHEST_PROTOCOL])
@pytest.mark.parametrize("make", MODELS, ids=IDS)
def test_model_round_trip(make, protocol):
    model = make()
    clone = pickle.loads(pickle.dumps(model, protocol=protocol))
    assert type(clone) is type(model) and repr(clone) == repr(model)
    assert_same(list(clone.state_dict().values()), list(model.state_dict().values()))
    x = sample_input(model)
    assert_same(run(clone, x), run(model, x))
    if not is_cell(model):
        assert clone._core is not model._core


@pytest.mark.parametrize("make", MODELS, ids=IDS)
def test_deepcopy(make):
    model = make()
    clone = copy.deepcopy(model)
    x = sample_input(model)
    assert_same(run(clone, x), run(model, x))


def test_unpickled_model_is_independent():
    model = fastrnn.GRU(3, 4, seed=0)
    clone = pickle.loads(pickle.dumps(model))
    model.load_state_dict(fastrnn.GRU(3, 4, seed=1).state_dict())
    x = sample_input(clone)
    assert_same(run(clone, x), run(fastrnn.GRU(3, 4, seed=0), x))


@pytest.mark.parametrize("batch", [None, 2])
@pytest.mark.parametrize(
    "make",
    [MODELS[0], MODELS[2], lambda: fastrnn.RNN(5, 7, num_layers=3, seed=7)],
    ids=["lstm", "gru", "rnn"],
)
def test_stream_round_trip_mid_sequence(make, batch):
    model = make()
    rng = np.random.default_rng(1)
    shape = (model.input_size,) if batch is None else (batch, model.input_size)
    xs = [rng.standard_normal(shape).astype(np.float32) for _ in range(10)]
    stream = model.stream(batch=batch)
    for x in xs[:4]:
        stream.step(x)
    clone = pickle.loads(pickle.dumps(stream))
    assert clone.batch == stream.batch and repr(clone.model) == repr(model)
    assert_same(flat(clone.state), flat(stream.state))
    rest_clone = [clone.step(x) for x in xs[4:]]
    rest = [stream.step(x) for x in xs[4:]]
    assert_same(rest_clone, rest)
    assert_same(flat(clone.state), flat(stream.state))
    clone.reset()  # the clone's state is its own
    assert not np.array_equal(flat(clone.state)[0], flat(stream.state)[0])


def test_streams_of_one_model_share_it_after_pickling():
    model = fastrnn.GRU(3, 4, seed=0)
    a, b = pickle.loads(pickle.dumps([model.stream(), model.stream(batch=2)]))
    assert a.model is b.model


def test_spawned_pool_gives_identical_results():
    models = [make() for make in MODELS]
    inputs = [sample_input(m, seed=i) for i, m in enumerate(models)]
    expected = [run(m, x) for m, x in zip(models, inputs)]
    stream = fastrnn.LSTM(5, 7, num_layers=2, seed=0).stream(batch=2)
    xs = [np.full((2, 5), t / 10, np.float32) for t in range(5)]
    stream.step(xs[0])
    expected_stream = run_stream(copy.deepcopy(stream), xs[1:])
    with multiprocessing.get_context("spawn").Pool(2) as pool:
        got = pool.starmap(run, list(zip(models, inputs)))
        got_stream = pool.apply(run_stream, (stream, xs[1:]))
    for g, e in zip(got, expected):
        assert_same(g, e)
    assert_same(got_stream[0], expected_stream[0])
    assert_same(flat(got_stream[1]), flat(expected_stream[1]))
