"""Import from PyTorch modules. torch is imported only here, only when called."""

from __future__ import annotations

from ._modules import GRU, LSTM, RNN, GRUCell, LSTMCell, RNNCell


def from_torch(module):
    """A fastrnn model with the configuration and weights of a torch.nn.LSTM, GRU, RNN,
    LSTMCell, GRUCell or RNNCell (the weights are copied; later changes to the module do not
    reach the fastrnn model)."""
    import torch.nn as nn

    sd = module.state_dict() if isinstance(module, nn.Module) else None
    if isinstance(module, (nn.LSTM, nn.GRU, nn.RNN)):
        kw = dict(
            num_layers=module.num_layers,
            bias=module.bias,
            batch_first=module.batch_first,
            dropout=module.dropout,
            bidirectional=module.bidirectional,
        )
        if isinstance(module, nn.LSTM):
            model = LSTM(module.input_size, module.hidden_size, proj_size=module.proj_size, **kw)
        elif isinstance(module, nn.GRU):
            model = GRU(module.input_size, module.hidden_size, **kw)
        else:
            model = RNN(
                module.input_size, module.hidden_size, nonlinearity=module.nonlinearity, **kw
            )
    elif isinstance(module, nn.LSTMCell):
        model = LSTMCell(module.input_size, module.hidden_size, module.bias)
    elif isinstance(module, nn.GRUCell):
        model = GRUCell(module.input_size, module.hidden_size, module.bias)
    elif isinstance(module, nn.RNNCell):
        model = RNNCell(module.input_size, module.hidden_size, module.bias, module.nonlinearity)
    else:
        raise TypeError(
            "from_torch expects nn.LSTM, nn.GRU, nn.RNN, nn.LSTMCell, nn.GRUCell or nn.RNNCell, "
            f"got {type(module).__name__}"
        )
    model.load_state_dict(sd)
    return model


def to_torch(model):
    """A torch.nn module (in eval mode) with the configuration and weights of a fastrnn model:
    the reference that `fastrnn verify` checks a model file against."""
    import torch
    import torch.nn as nn

    from ._io import config_of

    cfg = config_of(model)
    I, H, bias = cfg["input_size"], cfg["hidden_size"], cfg["bias"]
    nonlinearity = "relu" if cfg["mode"] == "RNN_RELU" else "tanh"
    if cfg["class"] == "LSTMCell":
        module = nn.LSTMCell(I, H, bias)
    elif cfg["class"] == "GRUCell":
        module = nn.GRUCell(I, H, bias)
    elif cfg["class"] == "RNNCell":
        module = nn.RNNCell(I, H, bias, nonlinearity)
    else:
        kw = dict(
            num_layers=cfg["num_layers"],
            bias=bias,
            batch_first=cfg["batch_first"],
            bidirectional=cfg["bidirectional"],
        )
        if cfg["class"] == "LSTM":
            module = nn.LSTM(I, H, proj_size=cfg["proj_size"], **kw)
        elif cfg["class"] == "GRU":
            module = nn.GRU(I, H, **kw)
        else:
            module = nn.RNN(I, H, nonlinearity=nonlinearity, **kw)
    module.load_state_dict({k: torch.from_numpy(v) for k, v in model.state_dict().items()})
    return module.eval()
