"""``TimeDistributed(layer)``: apply a layer to every time step of a sequence (Keras), for
many-to-many models. The first two axes (batch and time, in either order) are merged into
one batch of ``B * T`` samples, so the wrapped layer runs once per call, not once per step."""
from rnnfast.nn.module import Module, as_array, check_grad, keras_input_shape
from rnnfast.nn.serialization import deserialize, serialize

__all__ = ["TimeDistributed"]


class TimeDistributed(Module):
    """Wraps ``layer``; its parameters are named ``layer.<name>``."""

    def __init__(self, layer, *, name=None, input_shape=None):
        super().__init__()
        self.name = name
        self.input_shape = keras_input_shape(input_shape)
        if not isinstance(layer, Module):
            raise TypeError(f"layer: expected an rnnfast.nn layer, got {type(layer).__name__}")
        self.layer = layer

    def forward(self, x):
        x = as_array(x)
        if x.ndim < 2:
            raise ValueError(f"x: expected a sequence with batch and time as its first two axes, "
                             f"got shape {x.shape}")
        lead = x.shape[:2]
        y = self.layer.forward(x.reshape((lead[0] * lead[1],) + x.shape[2:]))
        y = y.reshape(lead + y.shape[1:])
        self._keep((x.shape, y.shape, y.dtype))
        return y

    def backward(self, dy):
        in_shape, out_shape, dtype = self._saved()
        dy = check_grad(dy, "dy", out_shape, dtype)
        dx = self.layer.backward(dy.reshape((out_shape[0] * out_shape[1],) + out_shape[2:]))
        return None if dx is None else dx.reshape(in_shape)

    def get_weights(self):
        """Keras' ``get_weights()``: the wrapped layer's (a Keras-style layer's layout)."""
        if not hasattr(self.layer, "get_weights"):
            raise TypeError(f"layer: {type(self.layer).__name__} has no Keras weight layout")
        return self.layer.get_weights()

    def set_weights(self, weights):
        if not hasattr(self.layer, "set_weights"):
            raise TypeError(f"layer: {type(self.layer).__name__} has no Keras weight layout")
        self.layer.set_weights(weights)

    def get_config(self):
        return {"layer": serialize(self.layer)}

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        return cls(deserialize(config.pop("layer"), "layer"), **config)
