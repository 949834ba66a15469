"""Keras import (fastrnn.io.keras) against Keras itself.

Keras 3 builds and runs every model here (its torch backend: no TensorFlow), with random
weights of both signs in every variable (biases too, so a misplaced bias shows); the model is
saved as `.keras` and as legacy `.h5` (Keras 3 writes both), read back by fastrnn, built and
run on every ISA, and its outputs — turned into Keras' form by KerasPart.outputs — compared
with Keras' own: |Δ| / max(1, |expected|) ≤ 1e-5, the parity bound of every suite.

tf.keras 2 cannot run here (it needs TensorFlow), so its `.h5` layout is written with h5py as
tf.keras 2's `model.save` writes it (hdf5_format.save_model_to_hdf5: bytes attributes, weight
names "lstm/lstm_cell/kernel:0", its config format with batch_input_shape, time_major and
nested inbound-node lists), with hard_sigmoid at tf.keras 2's slope 0.2; Keras 3 computes
the expected values with that activation as a Python function.

Masked cases compare the outputs at valid steps and the final states: at masked steps Keras
repeats the last output (or gives zeros), fastrnn gives zeros (docs/importers.md, Keras).
"""

from __future__ import annotations

import dataclasses
import json
import os
import zipfile

import numpy as np
import pytest

pytest.importorskip("h5py")
pytest.importorskip("torch")
os.environ["KERAS_BACKEND"] = "torch"
keras = pytest.importorskip("keras")
if keras.backend.backend() != "torch":
    pytest.skip(
        f"keras was imported with the {keras.backend.backend()} backend", allow_module_level=True
    )

import h5py

import fastrnn
from fastrnn.io import keras as fk
from support.common import assert_results

# Keras 3.15 converts tensors with np.array(x, copy=False) under numpy 2: not ours to fix.
pytestmark = pytest.mark.filterwarnings("ignore:__array__ implementation:DeprecationWarning")

L = keras.layers
B, T, I = 3, 7, 5
TOL = 1e-5  # the parity bound of every suite (tests/README.md)


@dataclasses.dataclass
class Built:
    """A Keras model to save, and what the imported part must give."""

    model: object
    x: np.ndarray  # the part's input
    expected: list  # Keras' outputs of the part, as numpy arrays
    layer: str | None = None  # read(layer=)
    state: object = None  # fastrnn state= (Keras' initial_state)
    lengths: np.ndarray | None = None  # fastrnn lengths= (Keras' mask)


def _numpy(out) -> list:
    out = out if isinstance(out, (list, tuple)) else [out]
    return [keras.ops.convert_to_numpy(t) for t in out]


def _randomize(model, seed: int) -> None:
    """Every variable uniform in [-0.5, 0.5] (Keras initialises biases to zero)."""
    rng = np.random.default_rng(seed)
    model.set_weights(
        [rng.uniform(-0.5, 0.5, w.shape).astype(np.float32) for w in model.get_weights()]
    )


def _input(seed: int, padded: tuple = ()) -> np.ndarray:
    x = np.random.default_rng(100 + seed).normal(size=(B, T, I)).astype(np.float32)
    for b, n in enumerate(padded):
        x[b, n:] = 0.0  # right padding: Masking's mask_value
    return x


def sequential(*layers, seed=0, padded=(), masking=False):
    """A Sequential model of `layers` (after Masking when asked), run on a (B, T, I) input."""
    model = keras.Sequential(
        [keras.Input((T, I))] + ([L.Masking()] if masking else []) + list(layers)
    )
    _randomize(model, seed)
    x = _input(seed, padded)
    lengths = np.array(padded) if padded else None
    return Built(model, x, _numpy(model(x)), lengths=lengths)


PADDED = (4, 7, 1)  # right-padded lengths of the masked cases (one full row, one of 1 step)


# --- the cases: name → builder --------------------------------------------------------------


MERGE_MODES = ["concat", "sum", "mul", "ave", None]


def _bidirectional(cell, merge, return_sequences, return_state=False, **kw):
    inner = getattr(L, cell)(9, return_sequences=return_sequences, return_state=return_state, **kw)
    return sequential(L.Bidirectional(inner, merge_mode=merge), seed=MERGE_MODES.index(merge))


def _nested():
    inner = keras.Sequential(
        [L.GRU(9, return_sequences=True, name="g1"), L.Dropout(0.3), L.GRU(9, name="g2")],
        name="inner",
    )
    inp = keras.Input((T, I))
    model = keras.Model(inp, L.Dense(2)(inner(inp)))
    _randomize(model, 3)
    x = _input(3)
    return Built(model, x, _numpy(inner(x)))


def _two_parts(which: str):
    """An encoder-decoder: the encoder's final state is the decoder's initial_state."""
    enc_in, dec_in = keras.Input((T, I), name="enc_in"), keras.Input((T, 4), name="dec_in")
    encoder = L.LSTM(9, return_state=True, name="encoder")
    decoder = L.LSTM(9, return_sequences=True, name="decoder")
    _, h, c = encoder(enc_in)
    model = keras.Model([enc_in, dec_in], decoder(dec_in, initial_state=[h, c]))
    _randomize(model, 4)
    x_enc = _input(4)
    x_dec = np.random.default_rng(5).normal(size=(B, T, 4)).astype(np.float32)
    enc_out = _numpy(encoder(x_enc))
    if which == "encoder":
        return Built(model, x_enc, enc_out, layer="encoder")
    state = (enc_out[1][None], enc_out[2][None])
    expected = _numpy(decoder(x_dec, initial_state=[enc_out[1], enc_out[2]]))
    return Built(model, x_dec, expected, layer="decoder", state=state)


def _embedding_masked():
    ids = np.random.default_rng(6).integers(1, 20, size=(B, T))
    for b, n in enumerate(PADDED):
        ids[b, n:] = 0
    emb = L.Embedding(20, I, mask_zero=True)
    lstm = L.LSTM(9, return_state=True)
    model = keras.Sequential([keras.Input((T,), dtype="int32"), emb, lstm])
    _randomize(model, 6)
    x = keras.ops.convert_to_numpy(emb(ids))
    expected = _numpy(model(ids))
    return Built(model, x, expected, lengths=fk.lengths_from_mask(ids != 0))


def _masked_functional():
    """A Functional model records the mask it passes (Keras 3: NotEqual and Any ops in the
    config, the mask in the call's kwargs)."""
    inp = keras.Input((T, I))
    gru = L.GRU(9, return_sequences=True, return_state=True)
    model = keras.Model(inp, gru(L.Masking()(inp)))
    _randomize(model, 9)
    x = _input(9, PADDED)
    return Built(model, x, _numpy(model(x)), lengths=np.array(PADDED))


CASES = {
    # LSTM: activations, bias, outputs, states, go_backwards.
    "lstm_last": lambda: sequential(L.LSTM(17)),
    "lstm_seq_state": lambda: sequential(L.LSTM(17, return_sequences=True, return_state=True)),
    "lstm_relu_hard_sigmoid": lambda: sequential(
        L.LSTM(9, activation="relu", recurrent_activation="hard_sigmoid", return_sequences=True)
    ),
    "lstm_linear_no_bias": lambda: sequential(
        L.LSTM(9, activation="linear", use_bias=False, return_sequences=True)
    ),
    "lstm_go_backwards": lambda: sequential(
        L.LSTM(9, go_backwards=True, return_sequences=True, return_state=True)
    ),
    "lstm_unroll_dropout": lambda: sequential(
        L.LSTM(9, unroll=True, dropout=0.5, recurrent_dropout=0.5, return_sequences=True)
    ),
    # GRU: reset_after both ways.
    "gru_reset_after": lambda: sequential(L.GRU(17, return_sequences=True, return_state=True)),
    "gru_classic": lambda: sequential(L.GRU(17, reset_after=False, return_sequences=True)),
    "gru_classic_hard_sigmoid_no_bias": lambda: sequential(
        L.GRU(
            9,
            reset_after=False,
            recurrent_activation="hard_sigmoid",
            use_bias=False,
            return_sequences=True,
        )
    ),
    "gru_no_bias": lambda: sequential(L.GRU(9, use_bias=False, return_sequences=True)),
    "gru_go_backwards_last": lambda: sequential(L.GRU(9, go_backwards=True, return_state=True)),
    "gru_relu_softsign": lambda: sequential(
        L.GRU(9, activation="relu", recurrent_activation="softsign", return_sequences=True)
    ),
    # SimpleRNN: every activation fastrnn maps.
    "rnn_tanh": lambda: sequential(L.SimpleRNN(17, return_sequences=True)),
    "rnn_relu_go_backwards": lambda: sequential(
        L.SimpleRNN(9, activation="relu", go_backwards=True, return_sequences=True)
    ),
    **{
        f"rnn_{a}": (
            lambda a=a: sequential(
                L.SimpleRNN(9, activation=a, return_sequences=True, return_state=True)
            )
        )
        for a in ("linear", "sigmoid", "hard_sigmoid", "softsign", "softplus", "elu", "leaky_relu")
    },
    # RNN over one cell.
    "rnn_of_lstm_cell": lambda: sequential(L.RNN(L.LSTMCell(9), return_sequences=True)),
    "rnn_of_gru_cell_classic": lambda: sequential(
        L.RNN(L.GRUCell(9, reset_after=False), return_state=True)
    ),
    # Bidirectional: every merge mode, sequences and last outputs with states.
    **{f"bi_lstm_seq_{m}": (lambda m=m: _bidirectional("LSTM", m, True)) for m in MERGE_MODES},
    **{
        f"bi_gru_last_state_{m}": (lambda m=m: _bidirectional("GRU", m, False, True))
        for m in MERGE_MODES
    },
    "bi_gru_classic": lambda: _bidirectional("GRU", "concat", True, reset_after=False),
    "bi_rnn": lambda: _bidirectional("SimpleRNN", "sum", True, return_state=True),
    "bi_backward_layer": lambda: sequential(
        L.Bidirectional(
            L.GRU(9, reset_after=False, return_sequences=True),
            backward_layer=L.GRU(
                9,
                reset_after=False,
                go_backwards=True,
                return_sequences=True,
                activation="relu",
                use_bias=False,
            ),
        )
    ),
    # Stacks: one fastrnn model of several layers.
    "stack_lstm3": lambda: sequential(
        L.LSTM(9, return_sequences=True),
        L.Dropout(0.5),
        L.LSTM(9, return_sequences=True),
        L.LSTM(9, return_state=True),
    ),
    "stack_bi_gru": lambda: sequential(
        L.Bidirectional(L.GRU(9, return_sequences=True)),
        L.Bidirectional(L.GRU(9, return_sequences=True), merge_mode="sum"),
    ),
    "stack_go_backwards_first": lambda: sequential(
        L.LSTM(9, go_backwards=True, return_sequences=True),
        L.LSTM(9, return_sequences=True),
        L.LSTM(9, return_sequences=True, return_state=True),
    ),
    "stack_mixed_bias": lambda: sequential(
        L.SimpleRNN(9, return_sequences=True, use_bias=False), L.SimpleRNN(9, return_sequences=True)
    ),
    # Models: nested, several parts picked by name, initial_state.
    "nested_sequential": _nested,
    "encoder": lambda: _two_parts("encoder"),
    "decoder_initial_state": lambda: _two_parts("decoder"),
    # Masking with right padding → lengths.
    "masked_lstm": lambda: sequential(L.LSTM(9, return_state=True), padded=PADDED, masking=True),
    "masked_gru_seq": lambda: sequential(
        L.GRU(9, return_sequences=True, return_state=True), padded=PADDED, masking=True
    ),
    "masked_gru_classic": lambda: sequential(
        L.GRU(9, reset_after=False, return_state=True), padded=PADDED, masking=True
    ),
    "masked_bi_lstm_seq": lambda: sequential(
        L.Bidirectional(L.LSTM(9, return_sequences=True, return_state=True)),
        padded=PADDED,
        masking=True,
    ),
    "masked_bi_gru_last_ave": lambda: sequential(
        L.Bidirectional(L.GRU(9), merge_mode="ave"), padded=PADDED, masking=True
    ),
    "masked_stack": lambda: sequential(
        L.LSTM(9, return_sequences=True),
        L.LSTM(9, return_sequences=True, return_state=True),
        padded=PADDED,
        masking=True,
    ),
    "masked_rnn_go_backwards_seq": lambda: sequential(
        L.SimpleRNN(9, go_backwards=True, return_sequences=True, return_state=True),
        padded=PADDED,
        masking=True,
    ),
    "masked_embedding": _embedding_masked,
    "masked_functional": _masked_functional,
}


# --- tf.keras 2's legacy .h5, written as tf.keras 2 writes it -------------------------------


def _tf2_layer_config(cls: str, name: str, **options) -> dict:
    """A recurrent layer's get_config() as tf.keras 2.x returns it."""
    config = {
        "name": name,
        "trainable": True,
        "dtype": "float32",
        "return_sequences": False,
        "return_state": False,
        "go_backwards": False,
        "stateful": False,
        "unroll": False,
        "time_major": False,
        "units": 9,
        "activation": "tanh",
        "use_bias": True,
        "kernel_initializer": {"class_name": "GlorotUniform", "config": {"seed": None}},
        "recurrent_initializer": {
            "class_name": "Orthogonal",
            "config": {"gain": 1.0, "seed": None},
        },
        "bias_initializer": {"class_name": "Zeros", "config": {}},
        "kernel_regularizer": None,
        "recurrent_regularizer": None,
        "bias_regularizer": None,
        "activity_regularizer": None,
        "kernel_constraint": None,
        "recurrent_constraint": None,
        "bias_constraint": None,
        "dropout": 0.0,
        "recurrent_dropout": 0.0,
    }
    if cls != "SimpleRNN":
        config["recurrent_activation"] = "sigmoid"
        config["implementation"] = 2
    if cls == "LSTM":
        config["unit_forget_bias"] = True
    if cls == "GRU":
        config["reset_after"] = True
    config.update(options)
    return {"class_name": cls, "config": config}


def _tf2_write(path, model_config: dict, layers: list) -> None:
    """A legacy .h5 as tf.keras 2's save_model_to_hdf5 writes it: `layers` is [(layer name,
    [(weight name, array)])] in the model's order."""
    with h5py.File(path, "w") as f:
        f.attrs["keras_version"] = "2.12.0"
        f.attrs["backend"] = "tensorflow"
        f.attrs["model_config"] = json.dumps(model_config).encode("utf8")
        g = f.create_group("model_weights")
        g.attrs["backend"] = b"tensorflow"
        g.attrs["keras_version"] = b"2.12.0"
        g.attrs["layer_names"] = np.array([n.encode("utf8") for n, _ in layers])
        for name, weights in layers:
            lg = g.create_group(name)
            lg.attrs["weight_names"] = np.array([w.encode("utf8") for w, _ in weights], dtype="S")
            for wname, value in weights:
                ds = lg.create_dataset(wname, value.shape, dtype=value.dtype)
                ds[:] = value


def _hard_sigmoid_tf2(x):
    return keras.ops.clip(0.2 * x + 0.5, 0.0, 1.0)  # tf.keras 2's hard_sigmoid


def _tf2_sequential_lstm():
    """Sequential LSTM(hard_sigmoid) → LSTM stack, tf.keras 2 layout."""
    model = keras.Sequential(
        [
            keras.Input((T, I)),
            L.LSTM(9, recurrent_activation=_hard_sigmoid_tf2, return_sequences=True),
            L.LSTM(9, recurrent_activation=_hard_sigmoid_tf2, return_state=True),
        ]
    )
    _randomize(model, 7)
    x = _input(7)
    w = model.get_weights()
    config = {
        "class_name": "Sequential",
        "config": {
            "name": "sequential",
            "layers": [
                {
                    "class_name": "InputLayer",
                    "config": {
                        "batch_input_shape": [None, T, I],
                        "dtype": "float32",
                        "sparse": False,
                        "ragged": False,
                        "name": "lstm_input",
                    },
                },
                _tf2_layer_config(
                    "LSTM", "lstm", recurrent_activation="hard_sigmoid", return_sequences=True
                ),
                _tf2_layer_config(
                    "LSTM", "lstm_1", recurrent_activation="hard_sigmoid", return_state=True
                ),
            ],
        },
    }
    layers = [
        (
            "lstm",
            [
                (f"lstm/lstm_cell/{n}:0", a)
                for n, a in zip(("kernel", "recurrent_kernel", "bias"), w[0:3])
            ],
        ),
        (
            "lstm_1",
            [
                (f"lstm_1/lstm_cell_1/{n}:0", a)
                for n, a in zip(("kernel", "recurrent_kernel", "bias"), w[3:6])
            ],
        ),
    ]
    return Built((config, layers), x, _numpy(model(x)))


def _tf2_functional_bi_gru(time_major: bool):
    """Functional Bidirectional(GRU(reset_after=False)), tf.keras 2 layout; time_major: the
    layer takes (T, B, I) (Keras 3 has no time_major: its batch-major result, transposed)."""
    gru = L.GRU(9, reset_after=False, return_sequences=True)
    model = keras.Sequential([keras.Input((T, I)), L.Bidirectional(gru, merge_mode="mul")])
    _randomize(model, 8)
    x = _input(8)
    expected = _numpy(model(x))
    w = model.get_weights()
    inner = _tf2_layer_config(
        "GRU", "gru", reset_after=False, return_sequences=True, time_major=time_major
    )
    shape = [T, None, I] if time_major else [None, T, I]
    config = {
        "class_name": "Functional",
        "config": {
            "name": "model",
            "layers": [
                {
                    "class_name": "InputLayer",
                    "config": {
                        "batch_input_shape": shape,
                        "dtype": "float32",
                        "sparse": False,
                        "ragged": False,
                        "name": "input_1",
                    },
                    "name": "input_1",
                    "inbound_nodes": [],
                },
                {
                    "class_name": "Bidirectional",
                    "config": {
                        "name": "bidirectional",
                        "trainable": True,
                        "dtype": "float32",
                        "layer": inner,
                        "merge_mode": "mul",
                    },
                    "name": "bidirectional",
                    "inbound_nodes": [[["input_1", 0, 0, {}]]],
                },
            ],
            "input_layers": [["input_1", 0, 0]],
            "output_layers": [["bidirectional", 0, 0]],
        },
    }
    names = ("kernel", "recurrent_kernel", "bias")
    weights = [(f"bidirectional/forward_gru/gru_cell_1/{n}:0", a) for n, a in zip(names, w[0:3])]
    weights += [(f"bidirectional/backward_gru/gru_cell_2/{n}:0", a) for n, a in zip(names, w[3:6])]
    if time_major:
        x, expected = x.transpose(1, 0, 2).copy(), [e.transpose(1, 0, 2) for e in expected]
    return Built((config, [("input_1", []), ("bidirectional", weights)]), x, expected)


def _tf2_encoder_decoder():
    """tf.keras 2 Functional: the decoder's initial_state in its inbound node's tensor list."""
    built = _two_parts("decoder")
    w = built.model.get_weights()
    enc = _tf2_layer_config("LSTM", "lstm", return_state=True)
    dec = _tf2_layer_config("LSTM", "lstm_1", return_sequences=True)
    inputs = [
        {
            "class_name": "InputLayer",
            "config": {
                "batch_input_shape": [None, T, n],
                "dtype": "float32",
                "sparse": False,
                "ragged": False,
                "name": name,
            },
            "name": name,
            "inbound_nodes": [],
        }
        for name, n in (("input_1", I), ("input_2", 4))
    ]
    config = {
        "class_name": "Functional",
        "config": {
            "name": "model",
            "layers": inputs
            + [
                {**enc, "name": "lstm", "inbound_nodes": [[["input_1", 0, 0, {}]]]},
                {
                    **dec,
                    "name": "lstm_1",
                    "inbound_nodes": [
                        [["input_2", 0, 0, {}], ["lstm", 0, 1, {}], ["lstm", 0, 2, {}]]
                    ],
                },
            ],
            "input_layers": [["input_1", 0, 0], ["input_2", 0, 0]],
            "output_layers": [["lstm_1", 0, 0]],
        },
    }
    names = ("kernel", "recurrent_kernel", "bias")
    layers = [
        ("input_1", []),
        ("input_2", []),
        ("lstm", [(f"lstm/lstm_cell/{n}:0", a) for n, a in zip(names, w[0:3])]),
        ("lstm_1", [(f"lstm_1/lstm_cell_1/{n}:0", a) for n, a in zip(names, w[3:6])]),
    ]
    return Built((config, layers), built.x, built.expected, layer="lstm_1", state=built.state)


TF2_CASES = {
    "tf2_sequential_lstm_hard_sigmoid": _tf2_sequential_lstm,
    "tf2_functional_bi_gru_classic": lambda: _tf2_functional_bi_gru(False),
    "tf2_functional_bi_gru_time_major": lambda: _tf2_functional_bi_gru(True),
    "tf2_encoder_decoder": _tf2_encoder_decoder,
}

PARAMS = [(name, fmt) for name in CASES for fmt in ("keras", "h5")] + [
    (name, "tf2.h5") for name in TF2_CASES
]


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    """name, format → (Built, path): each case built, run and saved by Keras once."""
    root = tmp_path_factory.mktemp("keras")
    built: dict = {}
    paths: dict = {}

    def get(name: str, fmt: str):
        if name not in built:
            built[name] = (TF2_CASES if fmt == "tf2.h5" else CASES)[name]()
        if (name, fmt) not in paths:
            path = root / f"{name}.{fmt}"
            if fmt == "tf2.h5":
                _tf2_write(path, *built[name].model)
            else:
                built[name].model.save(path)
            paths[name, fmt] = path
        return built[name], paths[name, fmt]

    return get


def _valid_steps(arrays: list, lengths, go_backwards: bool) -> list:
    """Sequence outputs with the masked steps zeroed (Keras repeats the last output there).
    A go_backwards layer's reversed sequence starts with its masked steps, zeros in Keras
    (the initial state's output) as in fastrnn: compared whole."""
    if lengths is None or go_backwards:
        return arrays
    out = []
    for a in arrays:
        a = np.array(a)
        if a.ndim == 3:
            for b, n in enumerate(lengths):
                a[b, n:] = 0.0
        out.append(a)
    return out


@pytest.mark.parametrize(("name", "fmt"), PARAMS, ids=[f"{n}-{f}" for n, f in PARAMS])
def test_parity_with_keras(isa, saved, name, fmt):
    built, path = saved(name, fmt)
    part, weights = fk.read_part(path, layer=built.layer)
    model = fastrnn.build(part.config, weights)
    assert part.masked == (built.lengths is not None)
    if built.state is not None:
        assert part.initial_state, "the decoder's initial_state comes from the encoder"
    if part.masked and part.mask_value is not None:  # the Masking layer's own rule
        np.testing.assert_array_equal(part.lengths(built.x), built.lengths)
    got = part.outputs(model(built.x, built.state, lengths=built.lengths))
    got = got if isinstance(got, list) else [got]
    want = built.expected
    got, want = (_valid_steps(a, built.lengths, part.go_backwards) for a in (got, want))
    assert [g.shape for g in got] == [w.shape for w in want]
    assert_results(tuple(got), tuple(want), TOL, label=f"{name} ({fmt})", suite="keras", isa=isa)


def test_read_gives_config_and_torch_weights(saved):
    """read() is read_part() without the part: the config, batch-first, torch's key names."""
    built, path = saved("stack_bi_gru", "keras")
    config, weights = fk.read(path)
    assert config == fk.read_part(path)[0].config
    assert config.describe() == "GRU(5, 9, num_layers=2, bidirectional=True, merge_mode='sum')"
    assert config.batch_first
    assert list(weights) == list(config.parameter_shapes())
    # Keras' GRU blocks z, r, h → torch's r, z, n; the input kernel transposed.
    kernel = keras.ops.convert_to_numpy(built.model.layers[0].forward_layer.cell.kernel)
    np.testing.assert_array_equal(weights["weight_ih_l0"][:9], kernel[:, 9:18].T)
    np.testing.assert_array_equal(weights["weight_ih_l0"][9:18], kernel[:, :9].T)


def test_load_and_from_keras(saved, tmp_path):
    """fastrnn.load and fastrnn.from_keras take .keras and .h5 files (told by name or by the
    HDF5 signature); state_dict hints do not apply to them; fastrnn convert writes a fastrnn
    file of the same model."""
    from fastrnn.cli import main

    built, path = saved("stack_bi_gru", "keras")
    x = built.x
    want = fastrnn.build(*fk.read(path))(x)
    for model in (
        fastrnn.load(path),
        fastrnn.from_keras(path),
        fastrnn.load(saved("stack_bi_gru", "h5")[1]),
    ):
        got = model(x)
        assert all(np.array_equal(a, b) for a, b in zip(_numpy(got[0]), _numpy(want[0])))
    renamed = tmp_path / "model.weights"  # an .h5 under another name: the signature tells
    renamed.write_bytes(saved("stack_bi_gru", "h5")[1].read_bytes())
    assert fastrnn.load(renamed).config == fastrnn.load(path).config
    with pytest.raises(
        ValueError, match=r"mode= does not apply to a Keras model, which stores its configuration"
    ):
        fastrnn.load(path, mode="GRU")
    with pytest.raises(ValueError, match="layer= picks a recurrent part"):
        fastrnn.load(path, node="x")
    assert main(["convert", str(path), str(tmp_path / "m.safetensors")]) == 0
    converted = fastrnn.load(tmp_path / "m.safetensors")
    assert converted.config == fastrnn.load(path).config


def test_keras_version_decides_hard_sigmoid(saved):
    _, path = saved("lstm_relu_hard_sigmoid", "keras")
    assert fk.read(path)[0].activations[0] == ("HardSigmoid", 1.0 / 6.0, 0.5)
    _, path = saved("tf2_sequential_lstm_hard_sigmoid", "tf2.h5")
    assert fk.read(path)[0].activations[0] == ("HardSigmoid", 0.2, 0.5)


def _rewrite_weights(path, target, edit) -> None:
    """A copy of a .keras archive whose model.weights.h5 went through edit(h5py.File)."""
    with zipfile.ZipFile(path) as src, zipfile.ZipFile(target, "w") as dst:
        for item in src.namelist():
            if item != "model.weights.h5":
                dst.writestr(item, src.read(item))
        h5 = target.with_suffix(".weights.h5")
        h5.write_bytes(src.read("model.weights.h5"))
        with h5py.File(h5, "a") as f:
            edit(f)
        dst.write(h5, "model.weights.h5")


@pytest.mark.parametrize(
    "name", ["stack_lstm3", "nested_sequential", "decoder_initial_state", "masked_functional"]
)
def test_archive_without_recorded_layer_names(tmp_path, saved, name):
    """Keras 3 releases that do not record each layer's name in its `vars` group: the layers'
    places follow Keras' naming rule (snake_case class, numbered; a Sequential's InputLayer
    and a Functional's ops skipped). The same weights either way."""
    built, path = saved(name, "keras")
    target = tmp_path / "unnamed.keras"

    def strip(f):
        f.visititems(
            lambda key, obj: obj.attrs.__delitem__("name") if "name" in obj.attrs else None
        )

    _rewrite_weights(path, target, strip)
    with zipfile.ZipFile(target) as z, h5py.File(z.open("model.weights.h5")) as f:
        names = []
        f.visititems(lambda key, obj: names.extend(obj.attrs))
        assert "name" not in names
    want = fk.read(path, layer=built.layer)
    got = fk.read(target, layer=built.layer)
    assert got[0] == want[0]
    assert list(got[1]) == list(want[1])
    for key in want[1]:
        np.testing.assert_array_equal(got[1][key], want[1][key], err_msg=key)


def test_bfloat16_variables_widened_exactly(tmp_path, saved):
    """Keras 3 stores bfloat16 variables as 2-byte opaque values with attrs dtype="bfloat16"
    (saving_lib.H5IOStore); fastrnn widens them to float32 exactly."""
    ml_dtypes = pytest.importorskip("ml_dtypes")
    built, path = saved("lstm_seq_state", "keras")
    target = tmp_path / "bf16.keras"

    def to_bfloat16(f):
        for key in ("0", "1", "2"):
            name = f"layers/lstm/cell/vars/{key}"
            value = f[name][()].astype(ml_dtypes.bfloat16)
            del f[name]
            f.create_dataset(name, data=value).attrs["dtype"] = "bfloat16"

    _rewrite_weights(path, target, to_bfloat16)
    config, weights = fk.read(target)
    kernel = keras.ops.convert_to_numpy(built.model.layers[0].cell.kernel)
    np.testing.assert_array_equal(
        weights["weight_ih_l0"], kernel.astype(ml_dtypes.bfloat16).astype(np.float32).T
    )


# --- refusals and choices -------------------------------------------------------------------


def _save(tmp_path, model, name="m.keras"):
    path = tmp_path / name
    model.save(path)
    return path


def _edit_config(tmp_path, path, edit, name="edited.keras"):
    """A copy of a .keras archive whose config.json went through edit(dict)."""
    target = tmp_path / name
    with zipfile.ZipFile(path) as src, zipfile.ZipFile(target, "w") as dst:
        for item in src.namelist():
            data = src.read(item)
            if item == "config.json":
                config = json.loads(data)
                edit(config)
                data = json.dumps(config).encode()
            dst.writestr(item, data)
    return target


def _layers_of(config: dict) -> list:
    return config["config"]["layers"]


def test_stateful_refused(tmp_path):
    model = keras.Sequential(
        [keras.Input(batch_shape=(2, T, I)), L.LSTM(4, stateful=True, name="lstm")]
    )
    path = _save(tmp_path, model)
    with pytest.raises(
        ValueError, match=r"m\.keras: layer 'lstm' \(LSTM\): stateful=True is not supported"
    ):
        fk.read(path)


@pytest.mark.parametrize(
    ("option", "value"), [("activation", "selu"), ("recurrent_activation", "gelu")]
)
def test_activation_refused(tmp_path, option, value):
    path = _save(
        tmp_path, keras.Sequential([keras.Input((T, I)), L.GRU(4, name="gru", **{option: value})])
    )
    with pytest.raises(
        ValueError,
        match=rf"layer 'gru' \(GRU\): {option}='{value}' is not supported: fastrnn computes",
    ):
        fk.read(path)


def test_unknown_option_refused(tmp_path):
    path = _save(tmp_path, keras.Sequential([keras.Input((T, I)), L.LSTM(4, name="lstm")]))

    def edit(config):
        _layers_of(config)[1]["config"]["use_layer_norm"] = True

    with pytest.raises(
        ValueError, match=r"layer 'lstm' \(LSTM\): unknown option\(s\) \['use_layer_norm'\]"
    ):
        fk.read(_edit_config(tmp_path, path, edit))


def test_custom_activation_refused(tmp_path):
    path = _save(
        tmp_path, keras.Sequential([keras.Input((T, I)), L.SimpleRNN(4, name="simple_rnn")])
    )

    def edit(config):
        _layers_of(config)[1]["config"]["activation"] = {
            "module": "builtins",
            "class_name": "function",
            "config": "my_activation",
            "registered_name": "function",
        }

    with pytest.raises(
        ValueError, match=r"layer 'simple_rnn' \(SimpleRNN\): activation=.*custom activation"
    ):
        fk.read(_edit_config(tmp_path, path, edit))


def test_go_backwards_mid_stack_refused_and_each_layer_readable(tmp_path):
    model = keras.Sequential(
        [
            keras.Input((T, I)),
            L.LSTM(4, return_sequences=True, name="lstm"),
            L.LSTM(4, go_backwards=True, name="lstm_1"),
        ]
    )
    path = _save(tmp_path, model)
    with pytest.raises(ValueError, match=r"2 recurrent parts") as e:
        fk.read(path)
    assert (
        "'lstm' → 'lstm_1': 'lstm_1' has go_backwards=True: a reversed layer can only start a stack"
        in str(e.value)
    )
    assert fk.read(path, layer="lstm")[0].num_layers == 1
    assert fk.read(path, layer="lstm_1")[0].reverse


def test_go_backwards_stack_with_mask_refused(tmp_path):
    """Keras applies the unreversed mask to a go_backwards layer's reversed output: the layer
    above then reads padding, which no lengths can say."""
    model = keras.Sequential(
        [
            keras.Input((T, I)),
            L.Masking(),
            L.GRU(4, go_backwards=True, return_sequences=True, name="gru"),
            L.GRU(4),
        ]
    )
    with pytest.raises(ValueError, match=r"'gru' has go_backwards=True and a mask"):
        fk.read(_save(tmp_path, model))


def test_bidirectional_forward_go_backwards_refused(tmp_path):
    model = keras.Sequential(
        [
            keras.Input((T, I)),
            L.Bidirectional(
                L.LSTM(4, go_backwards=True),
                backward_layer=L.LSTM(4, go_backwards=False),
                name="bidirectional",
            ),
        ]
    )
    with pytest.raises(
        ValueError,
        match=r"layer 'bidirectional' \(Bidirectional\): the forward layer has go_backwards=True",
    ):
        fk.read(_save(tmp_path, model))


def test_bidirectional_directions_must_agree(tmp_path):
    model = keras.Sequential(
        [
            keras.Input((T, I)),
            L.Bidirectional(
                L.GRU(4), backward_layer=L.GRU(4, go_backwards=True, reset_after=False)
            ),
        ]
    )
    with pytest.raises(
        ValueError,
        match=r"forward layer has reset_after=True and the backward layer reset_after=False",
    ):
        fk.read(_save(tmp_path, model))


def test_several_parts_need_layer(tmp_path):
    inp = keras.Input((T, I))
    a = L.LSTM(4, name="left")(inp)
    b = L.GRU(6, name="right")(inp)
    path = _save(tmp_path, keras.Model(inp, L.Concatenate()([a, b])))
    with pytest.raises(ValueError, match=r"2 recurrent parts .* pass layer=") as e:
        fk.read(path)
    assert "'left' (LSTM 4 units)" in str(e.value) and "'right' (GRU 6 units)" in str(e.value)
    assert fk.read(path, layer="left")[0].mode == "LSTM"
    assert fk.read(path, layer="right")[0].mode == "GRU"
    with pytest.raises(
        ValueError, match=r"layer='middle' is not a recurrent layer .* \['left', 'right'\]"
    ):
        fk.read(path, layer="middle")


def test_stack_that_disagrees_is_two_parts(tmp_path):
    model = keras.Sequential(
        [
            keras.Input((T, I)),
            L.LSTM(8, return_sequences=True, name="lstm"),
            L.LSTM(4, return_sequences=True, name="lstm_1"),
        ]
    )
    path = _save(tmp_path, model)
    with pytest.raises(ValueError, match=r"units differ \(8 in 'lstm', 4 in 'lstm_1'\)"):
        fk.read(path)
    assert fk.read(path, layer="lstm_1")[0].input_size == 8


def test_nested_layer_by_qualified_name(saved):
    _, path = saved("nested_sequential", "keras")
    part, _ = fk.read_part(path, layer="inner/g2")
    assert part.layers == ("inner/g1", "inner/g2")
    assert fk.read_part(path, layer="g1")[0].layers == part.layers


def test_no_recurrent_layer(tmp_path):
    model = keras.Sequential(
        [keras.Input((T, 3, 1)), L.ConvLSTM1D(2, 2, name="conv_lstm1d"), L.Flatten(), L.Dense(1)]
    )
    with pytest.raises(
        ValueError, match=r"has no recurrent layer fastrnn imports .*'conv_lstm1d' \(ConvLSTM1D\)"
    ):
        fk.read(_save(tmp_path, model))


def test_rnn_of_stacked_cells_refused(tmp_path):
    model = keras.Sequential(
        [keras.Input((T, I)), L.RNN([L.LSTMCell(4), L.LSTMCell(4)], name="rnn")]
    )
    with pytest.raises(
        ValueError,
        match=r"layer 'rnn' \(RNN\): cell=StackedRNNCells \(a list of cells\) is not supported",
    ):
        fk.read(_save(tmp_path, model))


def test_subclassed_model_refused(tmp_path):
    path = _save(tmp_path, keras.Sequential([keras.Input((T, I)), L.LSTM(4)]))

    def edit(config):
        config["class_name"] = "MyModel"
        config["config"] = {"units": 4}

    with pytest.raises(ValueError, match=r"class 'MyModel'\) does not list its layers"):
        fk.read(_edit_config(tmp_path, path, edit))


def test_config_contradicting_weights(tmp_path):
    """A GRU's bias shape tells reset_after: a config that says otherwise is a bad file."""
    path = _save(tmp_path, keras.Sequential([keras.Input((T, I)), L.GRU(4)]))

    def edit(config):
        _layers_of(config)[1]["config"]["reset_after"] = False

    with pytest.raises(
        ValueError,
        match=r"bias must have shape \(12,\) .* got \(2, 12\) \(the config says reset_after=False\)",
    ):
        fk.read(_edit_config(tmp_path, path, edit))


def test_bad_files(tmp_path):
    junk = tmp_path / "junk.keras"
    junk.write_bytes(b"not a model at all")
    with pytest.raises(ValueError, match=r"junk\.keras: is neither a Keras 3 archive"):
        fk.read(junk)
    path = _save(tmp_path, keras.Sequential([keras.Input((T, I)), L.LSTM(4)]))
    cut = tmp_path / "cut.keras"
    cut.write_bytes(path.read_bytes()[:300])
    with pytest.raises(ValueError, match=r"cut\.keras: "):
        fk.read(cut)
    model = keras.Sequential([keras.Input((T, I)), L.LSTM(4)])
    weights_only = tmp_path / "w.weights.h5"
    model.save_weights(weights_only)
    with pytest.raises(ValueError, match=r"w\.weights\.h5: holds weights only"):
        fk.read(weights_only)
    empty_zip = tmp_path / "empty.keras"
    with zipfile.ZipFile(empty_zip, "w") as z:
        z.writestr("other.txt", "x")
    with pytest.raises(ValueError, match=r"empty\.keras: is a zip archive without config\.json"):
        fk.read(empty_zip)


def test_lengths_from_mask():
    mask = np.array([[1, 1, 0, 0], [1, 1, 1, 1], [1, 0, 0, 0]], bool)
    np.testing.assert_array_equal(fk.lengths_from_mask(mask), [2, 4, 1])
    with pytest.raises(ValueError, match=r"mask row 1 is not right-padded: step 1 is masked"):
        fk.lengths_from_mask([[1, 1, 0], [1, 0, 1]])  # a hole
    with pytest.raises(ValueError, match=r"mask row 0 is not right-padded: step 0 is masked"):
        fk.lengths_from_mask([[0, 1, 1]])  # left padding
    with pytest.raises(ValueError, match=r"mask row 1 has no valid step"):
        fk.lengths_from_mask([[1, 0], [0, 0]])


def test_layer_must_be_a_name(saved):
    _, path = saved("lstm_last", "keras")
    with pytest.raises(TypeError, match=r"layer must be a str or None, got int"):
        fk.read(path, layer=3)


def test_recorded_mask_decides(tmp_path, saved):
    """A Keras 3 Functional model records the mask a layer gets; with none recorded the
    part is not masked even when a Masking layer is upstream."""
    _, path = saved("masked_functional", "keras")
    assert fk.read_part(path)[0].masked

    def edit(config):
        for entry in _layers_of(config):
            for node in entry.get("inbound_nodes", []):
                if "mask" in node.get("kwargs", {}):
                    node["kwargs"]["mask"] = None

    part, _ = fk.read_part(_edit_config(tmp_path, path, edit))
    assert not part.masked and part.mask_layer is None


def test_lengths_need_a_masking_value(saved):
    _, path = saved("masked_embedding", "keras")
    part, _ = fk.read_part(path)
    assert part.masked and part.mask_value is None and part.mask_layer
    with pytest.raises(ValueError, match=r"has no Masking value .* lengths_from_mask\(mask\)"):
        part.lengths(np.zeros((B, T, I), np.float32))


def _mutations(config, rng, n: int):
    """n copies of a JSON config, each with one random change somewhere in the tree."""
    strange = [None, 0, -1, 1.5, "x", [], {}, True, 2**40, [["a", 0]], {"class_name": 3}]
    for _ in range(n):
        tree = json.loads(json.dumps(config))
        nodes, todo = [], [tree]
        while todo:
            node = todo.pop()
            if isinstance(node, (dict, list)):
                nodes.append(node)
                todo.extend(node.values() if isinstance(node, dict) else node)
        node = nodes[rng.integers(len(nodes))]
        keys = list(node) if isinstance(node, dict) else list(range(len(node)))
        if keys:
            key = keys[rng.integers(len(keys))]
            if isinstance(node, dict) and rng.random() < 0.3:
                del node[key]
            else:
                node[key] = strange[rng.integers(len(strange))]
        yield tree


@pytest.mark.parametrize(
    ("name", "fmt"),
    [
        ("stack_bi_gru", "keras"),
        ("masked_functional", "keras"),
        ("decoder_initial_state", "keras"),
        ("tf2_encoder_decoder", "tf2.h5"),
    ],
)
def test_corrupted_configs(tmp_path, saved, name, fmt):
    """150 random changes to the model config: each file gives a model that runs, or a
    ValueError naming the file — never another exception."""
    built, path = saved(name, fmt)
    layer = built.layer
    if fmt == "keras":
        with zipfile.ZipFile(path) as z:
            original = json.loads(z.read("config.json"))
    else:
        with h5py.File(path) as f:
            original = json.loads(f.attrs["model_config"])
    rng = np.random.default_rng(sum(map(ord, name)))
    outcomes = {"model": 0, "refused": 0}
    unnamed = []
    for i, mutated in enumerate(_mutations(original, rng, 150)):
        if fmt == "keras":

            def replace(config, mutated=mutated):
                config.clear()
                config.update(mutated)

            target = _edit_config(tmp_path, path, replace, f"m{i}.keras")
        else:
            target = tmp_path / f"m{i}.h5"
            target.write_bytes(path.read_bytes())
            with h5py.File(target, "a") as f:
                f.attrs["model_config"] = json.dumps(mutated).encode()
        try:
            config, weights = fk.read(target, layer=layer)
        except ValueError as e:
            outcomes["refused"] += 1
            if str(target) not in str(e):
                unnamed.append(str(e))
            continue
        model = fastrnn.build(config, weights)
        model(np.zeros((1, 2, config.input_size), np.float32))
        outcomes["model"] += 1
    assert not unnamed, unnamed
    assert outcomes["refused"] > 10 and outcomes["model"] > 10, outcomes


def test_hard_sigmoid_needs_the_keras_version(tmp_path):
    model = keras.Sequential(
        [keras.Input((T, I)), L.GRU(4, recurrent_activation="hard_sigmoid", name="gru")]
    )
    path = _save(tmp_path, model)
    target = tmp_path / "no_version.keras"
    with zipfile.ZipFile(path) as src, zipfile.ZipFile(target, "w") as dst:
        for item in src.namelist():
            if item != "metadata.json":
                dst.writestr(item, src.read(item))
    with pytest.raises(
        ValueError,
        match=r"layer 'gru' \(GRU\): recurrent_activation='hard_sigmoid' has slope 0.2 up to "
        r"Keras 2 and 1/6 from Keras 3, and the file does not say which Keras wrote it",
    ):
        fk.read(target)


def test_keras_1_files_refused(tmp_path, saved):
    _, path = saved("tf2_sequential_lstm_hard_sigmoid", "tf2.h5")
    target = tmp_path / "keras1.h5"
    target.write_bytes(path.read_bytes())
    with h5py.File(target, "a") as f:
        f.attrs["keras_version"] = "1.2.2"
    with pytest.raises(ValueError, match=r"keras1\.h5: was written by Keras 1\.2\.2"):
        fk.read(target)


def test_weights_in_other_formats_refused(tmp_path, saved):
    _, path = saved("lstm_last", "keras")
    target = tmp_path / "npz.keras"
    with zipfile.ZipFile(path) as src, zipfile.ZipFile(target, "w") as dst:
        for item in src.namelist():
            dst.writestr(
                item if item != "model.weights.h5" else "model.weights.npz", src.read(item)
            )
    with pytest.raises(
        ValueError,
        match=r"npz\.keras: has no model\.weights\.h5 \(weights stored as \['model\.weights\.npz'\]",
    ):
        fk.read(target)
