"""The public operations, backed by the C++ kernels. Mirrors ``rnnfast.reference`` name for name."""
from rnnfast.functional.attention import (
    additive_attention_backward,
    additive_attention_forward,
    dot_attention_backward,
    dot_attention_forward,
)
from rnnfast.functional.recurrent import (
    gru_backward,
    gru_forward,
    lstm_backward,
    lstm_forward,
    rnn_backward,
    rnn_forward,
)
from rnnfast.functional.layer_norm_recurrent import (
    layer_norm_gru_backward,
    layer_norm_gru_forward,
    layer_norm_lstm_backward,
    layer_norm_lstm_forward,
)
from rnnfast.functional.dropout import dropout
from rnnfast.functional.linear import linear_backward, linear_forward
from rnnfast.functional._precision import new_weights_token
from rnnfast.functional.conv import (
    conv1d_backward,
    conv1d_forward,
    conv1d_max_pool1d_forward,
    gated_activation_backward,
    gated_activation_forward,
    global_avg_pool1d_backward,
    global_avg_pool1d_forward,
    global_max_pool1d_backward,
    global_max_pool1d_forward,
    max_pool1d_backward,
    max_pool1d_forward,
)

__all__ = [
    "additive_attention_backward",
    "additive_attention_forward",
    "dot_attention_backward",
    "dot_attention_forward",
    "conv1d_backward",
    "conv1d_forward",
    "conv1d_max_pool1d_forward",
    "gated_activation_backward",
    "gated_activation_forward",
    "global_avg_pool1d_backward",
    "global_avg_pool1d_forward",
    "global_max_pool1d_backward",
    "global_max_pool1d_forward",
    "max_pool1d_backward",
    "max_pool1d_forward",
    "layer_norm_gru_backward",
    "layer_norm_gru_forward",
    "layer_norm_lstm_backward",
    "layer_norm_lstm_forward",
    "dropout",
    "linear_backward",
    "linear_forward",
    "gru_backward",
    "gru_forward",
    "lstm_backward",
    "lstm_forward",
    "new_weights_token",
    "rnn_backward",
    "rnn_forward",
]
