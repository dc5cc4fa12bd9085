"""Layers with PyTorch's interface over NumPy arrays: each has ``forward`` (also ``layer(x)``),
``backward`` (returns the input gradient, adds parameter gradients to ``.grad``),
``parameters()`` / ``named_parameters()``, ``zero_grad()``, ``state_dict()`` /
``load_state_dict()`` (PyTorch's names, so torch state_dicts load 1:1) and ``train()`` /
``eval()``. The recurrent layers run each layer and direction as one fused kernel call.

PyTorch's names only (``TimeDistributed``, ``LastStep``, the WaveNet pieces and ``Seq2Seq``,
which PyTorch lacks, excepted); the Keras-style layers (``Dense``, ``Conv1D``, ``MaxPooling1D``,
``Attention``, ...) are in ``rnnfast.models.layers``."""
from rnnfast.nn.activation import ReLU, Sigmoid, Softmax, Tanh, get_activation
from rnnfast.nn.container import TimeDistributed
from rnnfast.nn.conv import Conv1d, MaxPool1d
from rnnfast.nn.dropout import Dropout
from rnnfast.nn.embedding import Embedding
from rnnfast.nn.layer_norm_recurrent import LayerNormGRU, LayerNormLSTM
from rnnfast.nn.linear import Linear
from rnnfast.nn.module import Module, Parameter
from rnnfast.nn.norm import LayerNorm
from rnnfast.nn.recurrent import GRU, LSTM, RNN
from rnnfast.nn.seq2seq import Seq2Seq
from rnnfast.nn.sequence import LastStep
from rnnfast.nn.serialization import register_layers
from rnnfast.nn.shape import Flatten
from rnnfast.nn.wavenet import GatedActivation, WaveNet, WaveNetBlock, WaveNetGenerator

# The layers a saved model may name (as "nn.<class>"); the PyTorch-style recurrent layers
# return (output, state) and are not layers of a Sequential.
register_layers("nn", [Linear, Embedding, Dropout, Flatten, LayerNorm, ReLU, Tanh, Sigmoid,
                       Softmax, TimeDistributed, Conv1d, MaxPool1d, LastStep, WaveNet, Seq2Seq])

__all__ = [
    "Conv1d",
    "Dropout",
    "Embedding",
    "Flatten",
    "GatedActivation",
    "GRU",
    "LSTM",
    "LastStep",
    "LayerNorm",
    "LayerNormGRU",
    "LayerNormLSTM",
    "Linear",
    "MaxPool1d",
    "Module",
    "Parameter",
    "RNN",
    "ReLU",
    "Seq2Seq",
    "Sigmoid",
    "Softmax",
    "Tanh",
    "TimeDistributed",
    "WaveNet",
    "WaveNetBlock",
    "WaveNetGenerator",
    "get_activation",
]
