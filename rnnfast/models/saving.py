"""``save_model`` / ``load_model``: a Sequential in one ``.npz`` file, without pickled code.

The file holds NumPy arrays only (read back with ``allow_pickle=False``):

- ``__model__``: a JSON document (a 0-d string array) with the format version, the model's
  name and input, each layer's class and constructor arguments, the compile settings (loss,
  metrics by name, clipping, the optimiser's class and options), the optimiser's scalar state
  and the states of the random generators (model shuffling, dropout, initialisation);
- ``weights/<name>``: every parameter under its ``state_dict`` name, in its dtype;
- ``optimizer/<parameter index>/<name>``: the optimiser's per-parameter arrays (moments).

Loading rebuilds the layers from their classes (a fixed table: the layers of
``rnnfast.nn`` and ``rnnfast.models.layers``) and copies every array, so predictions and
continued training match the saved model bit for bit. Metrics given as functions and losses
or optimisers of other classes cannot be written as data: they are left out with a warning.
"""
import json
import warnings

import numpy as np

from rnnfast import losses, nn
from rnnfast.models import layers as klayers
from rnnfast.models import optimizers as optimizers_mod

__all__ = ["save_model", "load_model", "layer_config", "layer_from_config"]

FORMAT = "rnnfast.models.Sequential"
VERSION = 1
CONFIG_KEY = "__model__"


def _dtype(layer):
    return np.dtype(layer.dtype).name


def _nested(layer):
    return None if layer is None else layer_config(layer)


_CONFIGS = {
    nn.Linear: lambda l: {"in_features": l.in_features, "out_features": l.out_features,
                          "bias": l.bias is not None, "dtype": _dtype(l)},
    nn.Dense: lambda l: {"units": l.units, "activation": _nested(l.activation),
                         "use_bias": l.use_bias, "input_dim": l.in_features, "dtype": _dtype(l)},
    nn.Embedding: lambda l: {"num_embeddings": l.num_embeddings,
                             "embedding_dim": l.embedding_dim, "padding_idx": l.padding_idx,
                             "mask_zero": l.mask_zero, "dtype": _dtype(l)},
    nn.Dropout: lambda l: {"p": l.p},
    nn.Flatten: lambda l: {"start_dim": l.start_dim, "end_dim": l.end_dim},
    nn.LayerNorm: lambda l: {"normalized_shape": list(l.normalized_shape), "eps": l.eps,
                             "elementwise_affine": l.elementwise_affine,
                             "bias": l.bias is not None or not l.elementwise_affine,
                             "dtype": _dtype(l)},
    nn.ReLU: lambda l: {},
    nn.Tanh: lambda l: {},
    nn.Sigmoid: lambda l: {},
    nn.Softmax: lambda l: {"dim": l.dim},
    nn.TimeDistributed: lambda l: {"layer": layer_config(l.layer)},
    nn.Conv1d: lambda l: {"in_channels": l.in_channels, "out_channels": l.out_channels,
                          "kernel_size": l.kernel_size, "stride": l.stride,
                          "padding": l.padding, "dilation": l.dilation, "groups": l.groups,
                          "bias": l.use_bias, "channels_last": l.channels_last,
                          "dtype": _dtype(l)},
    nn.Conv1D: lambda l: {"filters": l.filters, "kernel_size": l.kernel_size,
                          "strides": l.stride, "padding": l.padding,
                          "data_format": "channels_last" if l.channels_last
                          else "channels_first", "dilation_rate": l.dilation,
                          "groups": l.groups, "activation": _nested(l.activation),
                          "use_bias": l.use_bias, "dtype": _dtype(l)},
    nn.MaxPool1d: lambda l: {"kernel_size": l.kernel_size, "stride": l.stride,
                             "padding": l.padding, "channels_last": l.channels_last},
    nn.MaxPooling1D: lambda l: {"pool_size": l.pool_size, "strides": l.stride,
                                "padding": l.padding,
                                "data_format": "channels_last" if l.channels_last
                                else "channels_first"},
    nn.GlobalMaxPooling1D: lambda l: {"data_format": "channels_last" if l.channels_last
                                      else "channels_first", "keepdims": l.keepdims},
    nn.GlobalAveragePooling1D: lambda l: {"data_format": "channels_last" if l.channels_last
                                          else "channels_first", "keepdims": l.keepdims},
    klayers.Embedding: lambda l: l.get_config(),
    klayers.Activation: lambda l: l.get_config(),
    klayers.SimpleRNN: lambda l: l.get_config(),
    klayers.LSTM: lambda l: l.get_config(),
    klayers.GRU: lambda l: l.get_config(),
    klayers.Bidirectional: lambda l: dict(l.get_config(), layer=layer_config(l.layer)),
}
_CLASSES = {f"{cls.__module__}.{cls.__name__}": cls for cls in _CONFIGS}
_NESTED = ("activation", "layer")


def layer_config(layer):
    """``{"class": ..., "config": {...}}`` of a layer (constructor arguments, JSON-able)."""
    cls = type(layer)
    if cls not in _CONFIGS:
        raise TypeError(f"layer: cannot save a {cls.__module__}.{cls.__name__}; savable layers: "
                        f"{sorted({c.__name__ for c in _CONFIGS})}")
    config = _CONFIGS[cls](layer)
    if cls is klayers.Bidirectional:
        config["layer"]["config"]["input_dim"] = None
    return {"class": cls.__name__, "module": cls.__module__, "config": config}


def layer_from_config(spec):
    """The layer described by ``layer_config``'s output (built when the config says so)."""
    name = f"{spec.get('module')}.{spec.get('class')}"
    if name not in _CLASSES:
        raise ValueError(f"layer: unknown class {name} in the saved model")
    config = dict(spec["config"])
    for key in _NESTED:
        if isinstance(config.get(key), dict) and "class" in config[key]:
            config[key] = layer_from_config(config[key])
    cls = _CLASSES[name]
    if cls is klayers.Bidirectional:
        return cls(config.pop("layer"), **config)
    return cls(**config)


def _rng_owners(model):
    """``(states, owners)``: the state of each distinct random generator and, per module
    name ('' for the model), the index of its generator."""
    states, owners, index = [], {}, {}
    for name, module in model.named_modules():
        rng = module.__dict__.get("rng")
        if not isinstance(rng, np.random.Generator):
            continue
        if id(rng) not in index:
            index[id(rng)] = len(states)
            states.append(rng.bit_generator.state)
        owners[name] = index[id(rng)]
    return states, owners


def _compile_config(model, params):
    if model.loss is None:
        return None, {}
    loss = model.loss
    if type(loss).__name__ not in losses.__all__ or getattr(losses, type(loss).__name__) \
            is not type(loss) or type(loss) is losses.Loss:
        warnings.warn(f"save: the loss {type(loss).__name__} is not one of rnnfast.losses; the "
                      "model is saved without its compile settings", UserWarning, stacklevel=3)
        return None, {}
    metrics = [m for m in model.metric_specs if isinstance(m, str)]
    if len(metrics) != len(model.metric_specs):
        warnings.warn("save: metrics given as functions are not saved", UserWarning,
                      stacklevel=3)
    opt_config, arrays = (None, {})
    if model.optimizer is not None:
        opt_config, arrays = optimizers_mod.get_config(model.optimizer, params)
    if opt_config is None and model.optimizer_name is None:
        warnings.warn("save: the optimizer is neither one of rnnfast.optim's nor given by name; "
                      "load_model compiles the model with 'rmsprop'", UserWarning, stacklevel=3)
    return {"loss": {"class": type(loss).__name__,
                     "from_logits": getattr(loss, "from_logits", None)},
            "metrics": metrics, "clip": model.clip, "optimizer": opt_config,
            "optimizer_name": model.optimizer_name}, arrays


def save_model(model, path):
    """Write ``model`` to ``path`` (``.npz`` is added when missing); returns the path."""
    from rnnfast.models.sequential import Sequential

    if not isinstance(model, Sequential):
        raise TypeError(f"model: expected a Sequential, got {type(model).__name__}")
    path = str(path)
    if not path.endswith(".npz"):
        path += ".npz"
    if not model.built and model.layers and model._declared_input() is not None:
        model.build()
    params = model.parameters()
    compile_config, opt_arrays = _compile_config(model, params)
    states, owners = _rng_owners(model)
    document = {
        "format": FORMAT,
        "version": VERSION,
        "name": model.name,
        "input": None if model.input_spec is None else model.input_spec.get_config(),
        "built_input": None if model.input_shape is None else
        {"shape": list(model.input_shape), "dtype": np.dtype(model.input_dtype).name},
        "layers": [{"name": n, **layer_config(l)}
                   for n, l in zip(model.layer_names, model.layers)],
        "compile": compile_config,
        "rng": {"states": states, "owners": owners},
    }
    arrays = {f"weights/{k}": v for k, v in model.state_dict().items()}
    arrays.update({f"optimizer/{k}": v for k, v in opt_arrays.items()})
    arrays[CONFIG_KEY] = np.array(json.dumps(document))
    np.savez(path, **arrays)
    return path


def load_model(path):
    """The Sequential written by ``save_model`` (compiled, with its optimiser state, when it was
    compiled)."""
    from rnnfast.models.sequential import Sequential

    with np.load(str(path), allow_pickle=False) as data:
        if CONFIG_KEY not in data.files:
            raise ValueError(f"path: {path} is not a model saved by rnnfast (no {CONFIG_KEY})")
        document = json.loads(str(data[CONFIG_KEY]))
        arrays = {k: data[k] for k in data.files if k != CONFIG_KEY}
    if document.get("format") != FORMAT or document.get("version") != VERSION:
        raise ValueError(f"path: unsupported model format {document.get('format')!r} version "
                         f"{document.get('version')!r}")
    model = Sequential(name=document["name"])
    if document["input"] is not None:
        model.add(klayers.Input(**document["input"]))
    for spec in document["layers"]:
        layer = layer_from_config(spec)
        layer.name = spec["name"]
        model.add(layer)
    built = document["built_input"]
    if built is not None:
        model.build(tuple(built["shape"]), built["dtype"])
    weights = {k[len("weights/"):]: v for k, v in arrays.items() if k.startswith("weights/")}
    model.load_state_dict(weights)
    if not model.built and model.layers and model._declared_input() is not None:
        model.build()
    _restore_rngs(model, document["rng"])
    compile_config = document["compile"]
    if compile_config is not None:
        _restore_compile(model, compile_config,
                         {k[len("optimizer/"):]: v for k, v in arrays.items()
                          if k.startswith("optimizer/")})
    return model


def _restore_rngs(model, saved):
    gens = []
    for state in saved["states"]:
        gen = np.random.Generator(getattr(np.random, state["bit_generator"])())
        gen.bit_generator.state = state
        gens.append(gen)
    modules = dict(model.named_modules())
    for name, i in saved["owners"].items():
        if name in modules:
            object.__setattr__(modules[name], "rng", gens[i])


def _restore_compile(model, config, opt_arrays):
    loss_cls = getattr(losses, config["loss"]["class"])
    loss = loss_cls(from_logits=config["loss"]["from_logits"]) \
        if config["loss"]["from_logits"] is not None else loss_cls()
    model.compile(optimizer=config["optimizer_name"] or "rmsprop", loss=loss,
                  metrics=config["metrics"], **config["clip"])
    if config["optimizer"] is not None:
        params = model.parameters()
        opt = optimizers_mod.from_config(config["optimizer"], opt_arrays, params)
        model._optimizer_spec = model.optimizer = opt
