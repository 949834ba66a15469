"""Stateful streaming: one step (or one chunk of steps) at a time, carrying the state.

Feeding a sequence step by step, or in chunks of any sizes, gives bit for bit the output and
final state of one whole-sequence call: every path runs the same kernels in the same order.
"""

from __future__ import annotations

from types import MethodType

import numpy as np

from . import _core
from ._checks import MAX_SIZE, check_shape, float_array, positive_int, shape_text, to_float32


class Stream:
    """A stateful stream over a unidirectional LSTM, GRU or RNN; make one with
    `model.stream(batch=None, state=None)`.

    - `step(x_t)`: one step; x_t is (N, I), or (I,) for an unbatched stream (batch=None).
      Returns the step's output, (N, H_out) or (H_out,).
    - `feed(x)`: a chunk of steps in the model's layout — (T, N, I), (N, T, I) with
      batch_first, or (T, I) unbatched; returns the chunk's outputs in the same layout.
    - `state`: a copy of the current state in torch's layout: h (L, N, H_out), for LSTM a
      tuple (h, c) with c (L, N, H); unbatched without the N axis.
    - `reset(state=None)`: back to zeros (or to the given state).

    A stream is single-owner: it updates its state in place, so only one thread at a time
    may use it. Many streams (one per thread, per user, per session) may share one model.
    The stream follows its model: after `model.load_state_dict(...)` it steps with the new
    weights. A stream pickles with its model and its current state.
    """

    def __init__(self, model, batch: int | None = None, state=None) -> None:
        if model.bidirectional:
            raise ValueError(
                f"{type(model).__name__}: a bidirectional model cannot stream (its backward "
                "direction needs the whole sequence); use model(x) on whole sequences"
            )
        self._model = model
        self._batched = batch is not None
        # At most 2^24 sequences (as any size): a state for more is refused, not allocated.
        self._batch = positive_int(batch, "Stream: batch", maximum=MAX_SIZE) if self._batched else 1
        self._core_batch = self._batch if self._batched else 0  # the core's step: 0 unbatched
        L, B = model.num_layers, self._batch
        # h and a spare of its shape: a step reads h and writes the new state into the spare,
        # and the core then swaps the two in this list (see the core's step).
        self._hh = [np.zeros((L, B, model._h_out), np.float32) for _ in range(2)]
        self._c = np.zeros((L, B, model.hidden_size), np.float32) if model.mode == "LSTM" else None
        I = model.input_size
        self._step_shape = (B, I) if self._batched else (I,)
        # `step` as a compiled callable on the instance, which shadows the method below and
        # does the same without a Python frame or pybind11's dispatch (0.3-0.5 us less per
        # step in the stream benchmarks; see the core's Stepper). Whatever the core does not
        # take as it is (another dtype or layout, keywords, a wrong count) it hands to the
        # method. A subclass's own step stays in charge.
        if type(self).step is Stream.step:
            self.step = _core.stepper(
                model, self._hh, self._c, self._core_batch, MethodType(Stream.step, self)
            )
        if state is not None:
            self.reset(state)

    # --- configuration ---------------------------------------------------------------------

    @property
    def model(self):
        return self._model

    @property
    def batch(self) -> int | None:
        """N for a batched stream, None for an unbatched one."""
        return self._batch if self._batched else None

    def __repr__(self) -> str:
        return f"fastrnn.Stream({self._model!r}, batch={self.batch})"

    # --- state -----------------------------------------------------------------------------

    @property
    def state(self):
        """A copy of the current state: h, or (h, c) for LSTM, in torch's layout."""
        h = self._hh[0].copy() if self._batched else self._hh[0][:, 0].copy()
        if self._c is None:
            return h
        return h, (self._c.copy() if self._batched else self._c[:, 0].copy())

    def reset(self, state=None) -> None:
        """Sets the state to zeros, or to `state` (h, or (h, c) for LSTM, torch's layout)."""
        if state is None:
            self._hh[0].fill(0.0)
            if self._c is not None:
                self._c.fill(0.0)
            return
        m = self._model
        L, B = m.num_layers, self._batch
        if m.mode == "LSTM":
            if not isinstance(state, (tuple, list)) or len(state) != 2:
                raise TypeError(f"Stream: state must be a tuple (h, c), got {type(state).__name__}")
            pairs = (("h", state[0], self._hh[0]), ("c", state[1], self._c))
        else:
            pairs = (("h", state, self._hh[0]),)
        arrays = []
        for key, value, target in pairs:
            a = float_array(value, f"Stream: state {key}")
            features = target.shape[2]
            if self._batched:
                check_shape(
                    a, f"Stream: state {key}", (L, B, features), "num_layers, batch, features"
                )
            else:
                check_shape(a, f"Stream: state {key}", (L, features), "num_layers, features")
            arrays.append((target, a))
        for target, a in arrays:  # all checked first: a bad state leaves the stream unchanged
            target[...] = a.reshape(target.shape)

    # --- inference -------------------------------------------------------------------------

    def step(self, x_t):
        """One step: x_t (N, I), or (I,) for an unbatched stream; returns (N, H_out) or (H_out,).

        float32 C-contiguous arrays of that shape go straight to the core (which checks them
        and returns None for anything else); anything else is checked and converted here.
        """
        y = self._model._core.step(x_t, self._hh, self._c, self._core_batch)
        return self._step_checked(x_t) if y is None else y

    def _step_checked(self, x_t):
        """step for what the core does not take as it is: converted, or a clear error."""
        x = float_array(x_t, "Stream.step: x_t")
        if x.shape != self._step_shape:
            self._raise_step_shape(x)
        return self._model._core.step(to_float32(x), self._hh, self._c, self._core_batch)

    def _raise_step_shape(self, x) -> None:
        I = self._model.input_size
        if self._batched:
            expected, what = self._step_shape, f"batch={self._batch}, input_size={I}"
        else:
            expected, what = self._step_shape, f"unbatched stream, input_size={I}"
        check_shape(x, "Stream.step: x_t", expected, what)

    def feed(self, x):
        """A chunk of steps in the model's layout: (T, N, I), or (N, T, I) with batch_first,
        or (T, I) for an unbatched stream. Returns the chunk's outputs in the same layout;
        T = 0 returns an empty output and leaves the state as it is."""
        m = self._model
        x = float_array(x, "Stream.feed: x")  # forward converts it
        I, B = m.input_size, self._batch
        if self._batched:
            t_axis = 1 if m.batch_first else 0
            layout = f"(N, T, {I})" if m.batch_first else f"(T, N, {I})"
            ok = x.ndim == 3 and x.shape[1 - t_axis] == B and x.shape[2] == I
            what = f"batch={B}, input_size={I}"
        else:
            t_axis, layout = 0, f"(T, {I})"
            ok = x.ndim == 2 and x.shape[1] == I
            what = f"unbatched stream, input_size={I}"
        if not ok:
            raise ValueError(
                f"Stream.feed: x must have shape {layout} ({what}), got {shape_text(x.shape)}"
            )
        if x.shape[t_axis] == 0:
            out_shape = list(x.shape)
            out_shape[-1] = m._h_out
            return np.zeros(out_shape, np.float32)
        state = self.state
        y, new_state = m.forward(x, state)
        h, c = new_state if self._c is not None else (new_state, None)
        self._hh[0][...] = h.reshape(self._hh[0].shape)
        if c is not None:
            self._c[...] = c.reshape(self._c.shape)
        return y

    # --- pickling --------------------------------------------------------------------------

    def __getstate__(self) -> dict:
        return {"model": self._model, "batch": self.batch, "state": self.state}

    def __setstate__(self, state: dict) -> None:
        self.__init__(state["model"], state["batch"], state["state"])
