"""Streaming: step by step and chunk by chunk equal one whole-sequence call, bit for bit."""

import numpy as np
import pytest

import fastrnn

# (constructor, kwargs): every cell type, layers, projection, no bias, batch_first.
CONFIGS = [
    ("LSTM", dict(input_size=5, hidden_size=7)),
    ("LSTM", dict(input_size=3, hidden_size=17, num_layers=2, proj_size=5)),
    ("LSTM", dict(input_size=8, hidden_size=16, num_layers=3, batch_first=True)),
    ("GRU", dict(input_size=5, hidden_size=7, num_layers=2)),
    ("GRU", dict(input_size=4, hidden_size=9, bias=False, batch_first=True)),
    ("RNN", dict(input_size=6, hidden_size=7, num_layers=2)),
    ("RNN", dict(input_size=6, hidden_size=7, nonlinearity="relu", bias=False)),
]
IDS = [f"{cls}-{'-'.join(f'{k}={v}' for k, v in kw.items())}" for cls, kw in CONFIGS]


def make(cls, kw, seed=0):
    return getattr(fastrnn, cls)(**kw, seed=seed)


def random_state(model, batch, rng):
    """A random initial state in forward's layout (batch None: unbatched)."""
    L = model.num_layers
    lead = (L,) if batch is None else (L, batch)
    h = rng.standard_normal(lead + (model.proj_size or model.hidden_size,)).astype(np.float32)
    if model.mode != "LSTM":
        return h
    return h, rng.standard_normal(lead + (model.hidden_size,)).astype(np.float32)


def random_input(model, T, batch, rng):
    I = model.input_size
    if batch is None:
        shape = (T, I)
    else:
        shape = (batch, T, I) if model.batch_first else (T, batch, I)
    return rng.standard_normal(shape).astype(np.float32)


def time_slice(model, x, batch, start, stop):
    if batch is not None and model.batch_first:
        return x[:, start:stop]
    return x[start:stop]


def steps_of(model, x, batch):
    T = x.shape[1] if (batch is not None and model.batch_first) else x.shape[0]
    for t in range(T):
        yield x[:, t] if (batch is not None and model.batch_first) else x[t]


def stack_steps(model, outputs, batch):
    axis = 1 if (batch is not None and model.batch_first) else 0
    return np.stack(outputs, axis=axis)


def assert_state_equal(got, expected):
    if isinstance(expected, tuple):
        assert isinstance(got, tuple) and len(got) == 2
        for g, e in zip(got, expected):
            assert g.shape == e.shape
            assert np.array_equal(g, e)
    else:
        assert got.shape == expected.shape
        assert np.array_equal(got, expected)


@pytest.mark.parametrize("batch", [None, 1, 3])
@pytest.mark.parametrize(("cls", "kw"), CONFIGS, ids=IDS)
def test_steps_and_chunks_equal_whole_call(cls, kw, batch):
    rng = np.random.default_rng(1)
    model = make(cls, kw)
    T = 23
    x = random_input(model, T, batch, rng)
    state = random_state(model, batch, rng)
    y_whole, state_whole = model(x, state)

    stream = model.stream(batch=batch, state=state)
    y_steps = stack_steps(model, [stream.step(x_t) for x_t in steps_of(model, x, batch)], batch)
    assert y_steps.shape == y_whole.shape
    assert np.array_equal(y_steps, y_whole)
    assert_state_equal(stream.state, state_whole)

    # Chunks of random sizes, 0 included, from the same initial state.
    for trial in range(3):
        stream.reset(state)
        outs, t = [], 0
        while t < T:
            n = int(rng.integers(0, 9))
            outs.append(stream.feed(time_slice(model, x, batch, t, t + n)))
            t += n
        axis = 1 if (batch is not None and model.batch_first) else 0
        y_chunks = np.concatenate(outs, axis=axis)
        assert np.array_equal(y_chunks, y_whole), f"trial {trial}"
        assert_state_equal(stream.state, state_whole)


@pytest.mark.parametrize(("cls", "kw"), CONFIGS[:2] + CONFIGS[3:4], ids=IDS[:2] + IDS[3:4])
def test_steps_and_feeds_interleaved(cls, kw):
    rng = np.random.default_rng(2)
    model = make(cls, kw)
    x = random_input(model, 12, 2, rng)
    y_whole, state_whole = model(x)
    stream = model.stream(batch=2)
    axis = 1 if model.batch_first else 0
    parts = [stream.feed(time_slice(model, x, 2, 0, 5))]
    for t in range(5, 7):
        x_t = x[:, t] if model.batch_first else x[t]
        parts.append(np.expand_dims(stream.step(x_t), axis))
    parts.append(stream.feed(time_slice(model, x, 2, 7, 12)))
    assert np.array_equal(np.concatenate(parts, axis=axis), y_whole)
    assert_state_equal(stream.state, state_whole)


def test_zero_state_by_default_and_reset():
    rng = np.random.default_rng(3)
    model = fastrnn.LSTM(4, 6, num_layers=2, seed=0)
    x = rng.standard_normal((9, 4)).astype(np.float32)
    y_whole, (h_n, c_n) = model(x)
    stream = model.stream()
    h, c = stream.state
    assert h.shape == (2, 6) and c.shape == (2, 6) and not h.any() and not c.any()
    first = stream.feed(x)
    assert np.array_equal(first, y_whole)
    stream.reset()
    assert not stream.state[0].any() and not stream.state[1].any()
    assert np.array_equal(stream.feed(x), y_whole)
    assert_state_equal(stream.state, (h_n, c_n))


def test_state_is_a_copy():
    model = fastrnn.GRU(3, 5, seed=0)
    stream = model.stream(batch=2)
    stream.step(np.ones((2, 3), np.float32))
    h = stream.state
    h[...] = 42.0
    assert not np.array_equal(stream.state, h)


def test_step_output_shapes():
    model = fastrnn.LSTM(4, 8, num_layers=2, proj_size=3, seed=0)
    assert model.stream().step(np.zeros(4, np.float32)).shape == (3,)
    assert model.stream(batch=5).step(np.zeros((5, 4), np.float32)).shape == (5, 3)
    assert model.stream(batch=5).feed(np.zeros((0, 5, 4), np.float32)).shape == (0, 5, 3)


def test_step_converts_other_dtypes_and_strides():
    rng = np.random.default_rng(4)
    model = fastrnn.RNN(5, 6, seed=0)
    x32 = rng.standard_normal((3, 10)).astype(np.float32)[:, ::2]  # (3, 5), not contiguous
    a, b, c = model.stream(batch=3), model.stream(batch=3), model.stream(batch=3)
    ya = a.step(np.ascontiguousarray(x32))
    yb = b.step(x32)
    yc = c.step(x32.astype(np.float64))
    d = model.stream(batch=3)
    yd = d.step(np.ascontiguousarray(x32).astype(">f4"))  # float32 in the other byte order
    assert np.array_equal(ya, yb) and np.array_equal(ya, yc) and np.array_equal(ya, yd)
    assert ya.dtype == np.float32 and ya.flags.c_contiguous and ya.flags.writeable


def test_interleaved_streams_of_other_sizes_and_budgets(threads_restored):
    # A thread keeps its last single-step plan: steps of other models, batches and thread
    # budgets in between must each get their own plan (a stale one would size the workspace
    # or split the panels wrongly).
    rng = np.random.default_rng(7)
    models = [
        fastrnn.LSTM(16, 64, seed=0),
        fastrnn.GRU(8, 160, seed=1),
        fastrnn.quantize(fastrnn.LSTM(16, 64, seed=0), "int8"),
    ]
    cases = [(m, batch) for m in models for batch in (None, 3)]
    xs = [
        rng.standard_normal((6, 1 if b is None else b, m.input_size)).astype(np.float32)
        for m, b in cases
    ]
    streams = [m.stream(batch=b) for m, b in cases]
    outs = [[] for _ in cases]
    for t in range(6):
        fastrnn.set_num_threads(1 + t % 2)
        for i, ((_, b), s) in enumerate(zip(cases, streams)):
            outs[i].append(s.step(xs[i][t, 0] if b is None else xs[i][t]))
    fastrnn.set_num_threads(2)
    for i, (m, b) in enumerate(cases):
        y, _ = m(xs[i])
        got = np.stack(outs[i])
        assert np.array_equal(got, y[:, 0] if b is None else y), (type(m).__name__, b)


def test_core_step_checks_the_state_arrays():
    # The core's last line of defence: the stream's own arrays are always right, but a call
    # with others must be refused with the reason, never read or written.
    model = fastrnn.LSTM(3, 4, num_layers=2, seed=0)
    core, x = model._core, np.zeros(3, np.float32)
    h, spare, c = (np.zeros((2, 1, 4), np.float32) for _ in range(3))
    hh = [h, spare]
    assert core.step(x, hh, c, 0).shape == (4,)
    assert hh[0] is spare and hh[1] is h and spare.any()  # the new state, in the spare
    h1, c1 = spare.copy(), c.copy()
    hh = [spare, h]
    assert core.step(np.zeros(3, ">f4"), hh, c, 0) is None  # the stream converts, calls again
    assert core.step(np.zeros(4, np.float32), hh, c, 0) is None
    with pytest.raises(TypeError, match=r"h must be a list \[h, spare\] of two state arrays"):
        core.step(x, spare, c, 0)
    with pytest.raises(TypeError, match=r"h must be a list \[h, spare\]"):
        core.step(x, [spare], c, 0)
    with pytest.raises(ValueError, match="h and its spare must be two arrays"):
        core.step(x, [spare, spare], c, 0)
    with pytest.raises(TypeError, match="h must be float32, got float64"):
        core.step(x, [spare.astype(np.float64), h], c, 0)
    with pytest.raises(ValueError, match=r"h's spare must have shape \(2, 1, 4\), got \(1, 1, 4\)"):
        core.step(x, [spare, h[:1]], c, 0)
    with pytest.raises(ValueError, match="c must be C-contiguous"):
        core.step(x, hh, np.zeros((2, 1, 8), np.float32)[:, :, ::2], 0)
    with pytest.raises(TypeError, match="c must be float32, got >f4"):
        core.step(x, hh, c.astype(">f4"), 0)
    with pytest.raises(TypeError, match="h must be a numpy array"):
        core.step(x, [[0.0], h], c, 0)
    frozen = h.copy()
    frozen.flags.writeable = False
    with pytest.raises(ValueError, match="h's spare must be writeable"):
        core.step(x, [spare, frozen], c, 0)
    assert hh[0] is spare and hh[1] is h  # nothing ran: no swap, the state as it was
    assert np.array_equal(spare, h1) and np.array_equal(c, c1)


def test_many_streams_share_one_model():
    rng = np.random.default_rng(5)
    model = fastrnn.GRU(3, 4, seed=0)
    xs = [rng.standard_normal((6, 3)).astype(np.float32) for _ in range(3)]
    streams = [model.stream() for _ in xs]
    outs = [[] for _ in xs]
    for t in range(6):
        for s, x, out in zip(streams, xs, outs):
            out.append(s.step(x[t]))
    for x, out in zip(xs, outs):
        assert np.array_equal(np.stack(out), model(x)[0])


def test_stream_follows_new_weights():
    a = fastrnn.LSTM(3, 4, seed=0)
    b = fastrnn.LSTM(3, 4, seed=1)
    x = np.ones(3, np.float32)
    stream = a.stream()
    a.load_state_dict(b.state_dict())
    assert np.array_equal(stream.step(x), b.stream().step(x))


def test_compiled_step_equals_the_method_and_takes_what_it_takes():
    """A stream's step is a compiled callable on the instance (the method's fast path): the
    same bits as the method, keywords and conversions through the method, its errors."""
    model = fastrnn.LSTM(3, 4, num_layers=2, seed=0)
    fast, slow = model.stream(batch=2), model.stream(batch=2)
    assert type(fast.step).__name__ == "Stepper"
    rng = np.random.default_rng(0)
    for t in range(6):
        x = rng.standard_normal((2, 3)).astype(np.float32)
        taken = (x, x.astype(np.float64), np.asfortranarray(x), x)[t % 4]
        got = fast.step(x_t=taken) if t == 3 else fast.step(taken)
        assert np.array_equal(got, fastrnn.Stream.step(slow, x))
    assert_state_equal(fast.state, slow.state)
    with pytest.raises(TypeError, match=r"step\(\) missing 1 required positional argument: 'x_t'"):
        fast.step()
    with pytest.raises(TypeError, match=r"step\(\) takes 2 positional arguments but 3"):
        fast.step(x, x)
    with pytest.raises(
        TypeError, match="x_t must be a numpy array or a torch tensor, got NoneType"
    ):
        fast.step(None)


def test_compiled_step_keeps_a_subclass_step_and_is_collected():
    import gc
    import weakref

    class Logged(fastrnn.Stream):
        def step(self, x_t):
            self.seen = getattr(self, "seen", 0) + 1
            return super().step(x_t)

    model = fastrnn.GRU(3, 4, seed=0)
    logged = Logged(model)
    x = np.ones(3, np.float32)
    assert np.array_equal(logged.step(x), model.stream().step(x)) and logged.seen == 1
    # The stream holds its step, which holds the stream's method: a cycle the collector frees.
    stream = model.stream()
    stream.step(x)
    ref = weakref.ref(stream)
    del stream
    gc.collect()
    assert ref() is None


def test_repr_and_properties():
    model = fastrnn.LSTM(3, 4, seed=0)
    s = model.stream(batch=2)
    assert s.model is model and s.batch == 2 and model.stream().batch is None
    assert "Stream" in repr(s) and "batch=2" in repr(s)
    assert isinstance(s, fastrnn.Stream)


# --- errors ---------------------------------------------------------------------------------


@pytest.mark.parametrize("cls", ["LSTM", "GRU", "RNN"])
def test_bidirectional_cannot_stream(cls):
    model = getattr(fastrnn, cls)(3, 4, bidirectional=True, seed=0)
    with pytest.raises(ValueError, match="bidirectional model cannot stream"):
        model.stream()


def test_bad_batch():
    model = fastrnn.GRU(3, 4, seed=0)
    with pytest.raises(ValueError, match="batch must be >= 1, got 0"):
        model.stream(batch=0)
    with pytest.raises(TypeError, match="batch must be an int, got str"):
        model.stream(batch="2")


def test_step_bad_shape_names_expected_and_actual():
    model = fastrnn.LSTM(3, 4, seed=0)
    with pytest.raises(
        ValueError, match=r"x_t must have shape \(2, 3\) \(batch=2, input_size=3\), got \(3, 3\)"
    ):
        model.stream(batch=2).step(np.zeros((3, 3), np.float32))
    with pytest.raises(
        ValueError,
        match=r"x_t must have shape \(3,\) \(unbatched stream, input_size=3\), got \(1, 3\)",
    ):
        model.stream().step(np.zeros((1, 3), np.float32))
    with pytest.raises(ValueError, match=r"x_t must have shape \(2, 3\).*got \(2, 4\)"):
        model.stream(batch=2).step(np.zeros((2, 4)))


def test_step_bad_type():
    stream = fastrnn.LSTM(3, 4, seed=0).stream()
    with pytest.raises(TypeError, match="x_t must have a real floating dtype, got int64"):
        stream.step(np.zeros(3, np.int64))
    with pytest.raises(TypeError, match="x_t must be a numpy array or a torch tensor, got list"):
        stream.step([0.0, 0.0, 0.0])


def test_feed_bad_shape():
    model = fastrnn.GRU(3, 4, batch_first=True, seed=0)
    with pytest.raises(
        ValueError,
        match=r"x must have shape \(N, T, 3\) \(batch=2, input_size=3\), got \(5, 2, 3\)",
    ):
        model.stream(batch=2).feed(np.zeros((5, 2, 3), np.float32))
    with pytest.raises(
        ValueError,
        match=r"x must have shape \(T, 3\) \(unbatched stream, input_size=3\), got \(5, 1, 3\)",
    ):
        model.stream().feed(np.zeros((5, 1, 3), np.float32))


def test_bad_state_is_rejected_and_leaves_stream_unchanged():
    model = fastrnn.LSTM(3, 4, num_layers=2, seed=0)
    with pytest.raises(TypeError, match=r"state must be a tuple \(h, c\), got ndarray"):
        model.stream(batch=1, state=np.zeros((2, 1, 4), np.float32))
    with pytest.raises(
        ValueError,
        match=r"state h must have shape \(2, 1, 4\) \(num_layers, batch, features\), got \(1, 1, 4\)",
    ):
        model.stream(batch=1, state=(np.zeros((1, 1, 4)), np.zeros((2, 1, 4))))
    with pytest.raises(
        ValueError,
        match=r"state c must have shape \(2, 4\) \(num_layers, features\), got \(2, 1, 4\)",
    ):
        model.stream(state=(np.zeros((2, 4)), np.zeros((2, 1, 4))))
    stream = model.stream()
    stream.step(np.ones(3, np.float32))
    before = stream.state
    with pytest.raises(ValueError, match=r"Stream: state c must have shape \(2, 4\)"):
        stream.reset((np.zeros((2, 4)), np.zeros((2, 5))))
    assert_state_equal(stream.state, before)


# Large enough for two threads (hidden units split; batch rows split at 200): a
# step then projects its inputs panel by panel inside the step kernel, in alternating panel
# order from call to call; still the whole call's bits, on every ISA and thread count.
BIG = [
    ("LSTM", dict(input_size=200, hidden_size=256), 1),
    ("GRU", dict(input_size=96, hidden_size=160, num_layers=2), 1),
    ("LSTM", dict(input_size=64, hidden_size=512, proj_size=96), 1),
    ("RNN", dict(input_size=32, hidden_size=400), 2),
    ("GRU", dict(input_size=8, hidden_size=16), 200),
]


@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize(("cls", "kw", "batch"), BIG, ids=[f"{c}-{b}" for c, _, b in BIG])
def test_big_streams_equal_whole_call(cls, kw, batch, threads, isa, threads_restored):
    rng = np.random.default_rng(2)
    model = make(cls, kw)
    fastrnn.set_num_threads(threads)
    assert model.plan(batch, 10**4)["threads"] == threads
    x = random_input(model, 9, batch, rng)
    state = random_state(model, batch, rng)
    y_whole, state_whole = model(x, state)
    stream = model.stream(batch=batch, state=state)
    y_steps = stack_steps(model, [stream.step(x_t) for x_t in steps_of(model, x, batch)], batch)
    assert np.array_equal(y_steps, y_whole)
    assert_state_equal(stream.state, state_whole)
