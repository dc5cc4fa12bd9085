"""Layers with PyTorch's interface over NumPy arrays: each has ``forward`` (also ``layer(x)``),
``backward`` (returns the input gradient, adds parameter gradients to ``.grad``),
``parameters()`` / ``named_parameters()``, ``zero_grad()``, ``state_dict()`` /
``load_state_dict()`` (PyTorch's names, so torch state_dicts load 1:1) and ``train()`` /
``eval()``. The recurrent layers run each layer and direction as one fused kernel call."""
from rnnfast.nn.attention import AdditiveAttention, Attention
from rnnfast.nn.activation import ReLU, Sigmoid, Softmax, Tanh, get_activation
from rnnfast.nn.container import TimeDistributed
from rnnfast.nn.conv import (
    Conv1D,
    Conv1d,
    GlobalAveragePool1D,
    GlobalAveragePooling1D,
    GlobalAvgPool1D,
    GlobalMaxPool1D,
    GlobalMaxPooling1D,
    MaxPool1D,
    MaxPool1d,
    MaxPooling1D,
)
from rnnfast.nn.dropout import Dropout
from rnnfast.nn.embedding import Embedding
from rnnfast.nn.linear import Dense, Linear
from rnnfast.nn.module import Module, Parameter
from rnnfast.nn.norm import LayerNorm
from rnnfast.nn.recurrent import GRU, LSTM, RNN
from rnnfast.nn.sequence import LastStep
from rnnfast.nn.shape import Flatten
from rnnfast.nn.wavenet import GatedActivation, WaveNet, WaveNetBlock, WaveNetGenerator

__all__ = [
    "AdditiveAttention",
    "Attention",
    "Conv1D",
    "Conv1d",
    "Dense",
    "Dropout",
    "Embedding",
    "Flatten",
    "GatedActivation",
    "GRU",
    "GlobalAveragePool1D",
    "GlobalAveragePooling1D",
    "GlobalAvgPool1D",
    "GlobalMaxPool1D",
    "GlobalMaxPooling1D",
    "LSTM",
    "LastStep",
    "LayerNorm",
    "Linear",
    "MaxPool1D",
    "MaxPool1d",
    "MaxPooling1D",
    "Module",
    "Parameter",
    "RNN",
    "ReLU",
    "Sigmoid",
    "Softmax",
    "Tanh",
    "TimeDistributed",
    "WaveNet",
    "WaveNetBlock",
    "WaveNetGenerator",
    "get_activation",
]
