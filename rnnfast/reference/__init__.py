"""Plain NumPy reference of every op: the tests' oracle, written for clarity. It computes in
float64; the recurrent, conv, pool and linear forwards also take ``dtype=np.float32`` (every
array and operation of the forward and its backward in float32), whose error against float64
is the yardstick of the float32 kernels' tests."""
from rnnfast.reference.attention import (
    additive_attention_backward,
    additive_attention_forward,
    dot_attention_backward,
    dot_attention_forward,
)
from rnnfast.reference.recurrent import (
    gru_backward,
    gru_forward,
    layer_norm_gru_backward,
    layer_norm_gru_forward,
    layer_norm_lstm_backward,
    layer_norm_lstm_forward,
    lstm_backward,
    lstm_forward,
    recurrent_masks,
    rnn_backward,
    rnn_forward,
)
from rnnfast.reference.dropout import dropout
from rnnfast.reference.linear import linear_backward, linear_forward
from rnnfast.reference.conv import (
    conv1d_backward,
    conv1d_forward,
    conv1d_max_pool1d_forward,
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
    "global_avg_pool1d_backward",
    "global_avg_pool1d_forward",
    "global_max_pool1d_backward",
    "global_max_pool1d_forward",
    "max_pool1d_backward",
    "max_pool1d_forward",
    "dropout",
    "linear_backward",
    "linear_forward",
    "gru_backward",
    "gru_forward",
    "layer_norm_gru_backward",
    "layer_norm_gru_forward",
    "layer_norm_lstm_backward",
    "layer_norm_lstm_forward",
    "lstm_backward",
    "lstm_forward",
    "rnn_backward",
    "rnn_forward",
    "recurrent_masks",
]
