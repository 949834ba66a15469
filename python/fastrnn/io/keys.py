"""A configuration from torch's key names and shapes, for files that do not store one.

Rules (torch.nn's parameter names):

- keys `weight_ih_l{k}[_reverse]` → a layer stack (LSTM/GRU/RNN); `weight_ih` → a cell;
- num_layers: 1 + the largest k; bidirectional: `weight_ih_l0_reverse` present;
  bias: `bias_ih_l0` (cells: `bias_ih`) present; input_size: weight_ih_l0's columns;
- proj_size: `weight_hr_l0` present → its rows, hidden_size its columns (LSTM only);
  otherwise hidden_size = weight_hh_l0's columns;
- the cell from weight_hh_l0's rows G: 4·H → LSTM, 3·H → GRU, H → RNN. An RNN's
  nonlinearity is not in the weights: pass mode='RNN_TANH' or 'RNN_RELU' (or
  nonlinearity=). A given mode must agree with the shapes;
- batch_first is not in the weights: False unless given;
- a key prefix ("encoder.rnn.") is found when only one RNN is in the file; other keys
  outside it are ignored. Several RNNs: pass prefix=.
"""

from __future__ import annotations

import re

from .._checks import MAX_LAYERS, MAX_SIZE, shape_text
from .._config import MODES, NONLINEARITIES, ModelConfig, gates, rnn_mode
from .base import BadFile, short


def hints_check(mode, nonlinearity, prefix) -> None:
    """The caller's hints, checked before any file is read."""
    if mode is not None and mode not in MODES:
        raise ValueError(f"mode must be one of {sorted(MODES)}, got {mode!r}")
    if nonlinearity is not None and nonlinearity not in NONLINEARITIES:
        raise ValueError(f"nonlinearity must be 'tanh' or 'relu', got {nonlinearity!r}")
    if (
        mode in ("RNN_TANH", "RNN_RELU")
        and nonlinearity is not None
        and mode != rnn_mode(nonlinearity)
    ):
        raise ValueError(f"mode={mode!r} contradicts nonlinearity={nonlinearity!r}")
    if prefix is not None and not isinstance(prefix, str):
        raise TypeError(f"prefix must be a str, got {type(prefix).__name__}")


def prefix_select(path, names: list, prefix) -> dict[str, str]:
    """{key without prefix: key in the file} for the one RNN in the file (or the one under
    `prefix`)."""
    if prefix is None:
        found = sorted(
            {m.group(1) for k in names if (m := re.fullmatch(r"((?:.*\.)?)weight_ih(?:_l0)?", k))}
        )
        if not found:
            raise BadFile(path, "holds no RNN weights: no key ends in weight_ih_l0 or weight_ih")
        if len(found) > 1:
            raise BadFile(
                path,
                f"holds several RNNs (key prefixes {short(found)}): pass prefix= to choose one",
            )
        prefix = found[0]
    selected = {k[len(prefix) :]: k for k in names if k.startswith(prefix)}
    if not selected:
        raise BadFile(path, f"has no key starting with prefix {prefix!r}")
    return selected


def _mode_resolve(path, hidden: int, rows: int, where: str, mode, nonlinearity) -> str:
    """The cell type from the gate rows (rows = gates·hidden) and the caller's hints."""
    if mode is not None:
        if gates(mode) * hidden != rows:
            raise BadFile(
                path,
                f"mode={mode!r} needs {gates(mode)}·hidden_size = {gates(mode) * hidden} "
                f"rows in {where}, the file has {rows} (hidden_size={hidden})",
            )
        return mode
    if rows == 4 * hidden:
        return "LSTM"
    if rows == 3 * hidden:
        return "GRU"
    if rows == hidden:
        if nonlinearity is None:
            raise BadFile(
                path,
                "holds an RNN, whose nonlinearity is not stored in its weights: pass "
                "mode='RNN_TANH' or mode='RNN_RELU' (or nonlinearity='tanh'/'relu')",
            )
        return rnn_mode(nonlinearity)
    raise BadFile(
        path,
        f"{where} has {rows} rows for hidden_size {hidden}: not 4·H (LSTM), 3·H (GRU) or H (RNN)",
    )


def config_infer(path, shapes: dict[str, tuple], mode, nonlinearity) -> ModelConfig:
    """The configuration of a torch state_dict (keys without prefix) from names and shapes,
    checked (sizes, options, weight count); the keys themselves are checked by keys_check."""

    def matrix(key: str) -> tuple:
        if key not in shapes:
            raise BadFile(path, f"missing key {key!r}")
        s = shapes[key]
        if len(s) != 2 or not all(1 <= d <= MAX_SIZE for d in s):
            raise BadFile(
                path,
                f"{key!r} must be a matrix with sizes in [1, {MAX_SIZE}], "
                f"got shape {shape_text(s)}",
            )
        return s

    cell = "weight_ih" in shapes
    sfx = "" if cell else "_l0"
    w_ih, w_hh = matrix("weight_ih" + sfx), matrix("weight_hh" + sfx)
    if not cell and "weight_hr_l0" in shapes:
        proj, hidden = matrix("weight_hr_l0")
        if w_hh[1] != proj:
            raise BadFile(
                path,
                f"weight_hh_l0 has {w_hh[1]} columns, weight_hr_l0 {proj} rows: "
                "they must be equal (proj_size)",
            )
    else:
        proj, hidden = 0, w_hh[1]
    if proj and mode is None:
        mode = "LSTM"  # only an LSTM has a projection
    mode = _mode_resolve(path, hidden, w_hh[0], "weight_hh" + sfx, mode, nonlinearity)
    layers = 1
    if not cell:
        # At most 9 digits: a longer number is no layer index (and int() of thousands of
        # digits is slow or refused); such keys are then reported as unexpected.
        numbers = [
            int(m.group(1)) for k in shapes if (m := re.fullmatch(r"weight_ih_l(\d{1,9})", k))
        ]
        layers = max(numbers) + 1
        if layers > MAX_LAYERS:
            raise BadFile(path, f"num_layers must be in [1, {MAX_LAYERS}], got {layers}")
    kind = {"LSTM": "LSTM", "GRU": "GRU"}.get(mode, "RNN") + ("Cell" if cell else "")
    config = ModelConfig(
        kind=kind,
        mode=mode,
        input_size=w_ih[1],
        hidden_size=hidden,
        num_layers=layers,
        bidirectional=not cell and "weight_ih_l0_reverse" in shapes,
        proj_size=proj,
        bias=("bias_ih" + sfx) in shapes,
    )
    problem = config.problem()
    if problem:
        raise BadFile(path, problem)
    return config


def keys_check(path, config: ModelConfig, shapes: dict[str, tuple]) -> None:
    """Exactly the keys and shapes of `config`: a missing, unexpected or mis-shaped key is
    a BadFile naming it."""
    expected = config.parameter_shapes()
    missing = [k for k in expected if k not in shapes]
    extra = [k for k in shapes if k not in expected]
    if missing or extra:
        parts = []
        if missing:
            parts.append(f"missing keys {short(missing)}")
        if extra:
            parts.append(f"unexpected keys {short(extra)}")
        raise BadFile(path, f"{' and '.join(parts)} for {config.describe()}")
    for key, shape in expected.items():
        if tuple(shapes[key]) != shape:
            raise BadFile(
                path,
                f"{key!r} has shape {shape_text(shapes[key])}, expected "
                f"{shape_text(shape)} for {config.describe()}",
            )


def hints_apply(path, config: ModelConfig, mode, nonlinearity, batch_first) -> ModelConfig:
    """A stored configuration with the caller's hints: mode and nonlinearity must agree
    with it; batch_first (layers only) overrides the stored layout."""
    if mode is not None and mode != config.mode:
        raise ValueError(f"{path}: holds a {config.mode} model, mode={mode!r} was given")
    if nonlinearity is not None and config.nonlinearity != nonlinearity:
        raise ValueError(
            f"{path}: holds a {config.mode} model, nonlinearity={nonlinearity!r} was given"
        )
    if batch_first is not None and not config.is_cell:
        config = config.replace(batch_first=bool(batch_first))
    return config
