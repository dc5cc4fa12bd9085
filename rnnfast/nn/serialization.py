"""Layers as data: ``serialize(layer)`` gives ``{"class_name": ..., "config": layer.get_config()}``
and ``deserialize(spec)`` the layer back through ``cls.from_config(config)`` (Keras' pattern).

Only the classes registered here can be named by a spec: the layers of ``rnnfast.nn`` (under
``"nn.<name>"``) and of ``rnnfast.models.layers`` (``"layers.<name>"``), registered by those
packages. A name is never looked up on a module, so a spec read from a file cannot reach any
other class. ``deserialize`` checks a config before the constructor sees it: its keys against
the constructor's arguments, JSON types only, booleans where the constructor's default is a
boolean, dtypes by name, bounded ints and strings, finite floats, nested layer specs at most
``MAX_DEPTH`` deep; anything else raises ``ValueError`` naming the layer and the argument.
"""
import contextvars
import inspect
import math

__all__ = ["register_layers", "registered_name", "serialize", "deserialize", "check_config",
           "is_finite_number", "MAX_CONFIG_INT", "MAX_DEPTH"]

MAX_CONFIG_INT = 2 ** 31 - 1  # bound of every int in a layer config
MAX_STRING = 256              # bound of every string in a layer config
MAX_LIST = 4096               # bound of every list in a layer config (a WaveNet's dilations:
                              # one per layer; flat lists of scalars only)
MAX_DEPTH = 4                 # nested layers (TimeDistributed, Bidirectional)
DTYPES = ("float32", "float64", "mixed_bfloat16")  # "mixed_bfloat16": a dtype policy

_DEPTH = contextvars.ContextVar("rnnfast_layer_depth", default=0)
_CLASSES = {}  # registered name -> class
_NAMES = {}    # class -> registered name


def register_layers(prefix, classes):
    """Register ``classes`` under ``"<prefix>.<class name>"`` (each class once)."""
    for cls in classes:
        name = f"{prefix}.{cls.__name__}"
        if _CLASSES.get(name, cls) is not cls or _NAMES.get(cls, name) != name:
            raise ValueError(f"register_layers: {name} is already registered to another class")
        _CLASSES[name] = cls
        _NAMES[cls] = name


def registered_name(layer_or_class):
    """The registered name of a layer's exact class, else TypeError (subclasses are not
    covered by their parent's registration: their configs may differ)."""
    cls = layer_or_class if isinstance(layer_or_class, type) else type(layer_or_class)
    if cls not in _NAMES:
        raise TypeError(f"layer: cannot save a {cls.__module__}.{cls.__name__}; savable layers: "
                        f"{sorted(_CLASSES)}")
    return _NAMES[cls]


def serialize(layer):
    """``{"class_name": <registered name>, "config": layer.get_config()}``."""
    return {"class_name": registered_name(layer), "config": layer.get_config()}


def _arguments(cls):
    """``(accepted, required, defaults)`` of ``cls``'s constructor, following ``**kwargs`` to
    the parents' constructors."""
    accepted, required, defaults = set(), set(), {}
    for klass in cls.__mro__:
        init = klass.__dict__.get("__init__")
        if init is None:
            continue
        more = False
        for i, p in enumerate(inspect.signature(init).parameters.values()):
            if i == 0 or p.kind is p.VAR_POSITIONAL:
                continue
            if p.kind is p.VAR_KEYWORD:
                more = True
                continue
            if p.name not in accepted:
                accepted.add(p.name)
                if p.default is p.empty:
                    required.add(p.name)
                else:
                    defaults[p.name] = p.default
        if not more:
            break
    accepted.discard("rng")  # a generator object cannot come from data
    return accepted, required, defaults


def is_finite_number(value):
    """True for an int or float (not a bool) that is finite as a float (JSON ints may have
    thousands of digits)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return False
    try:
        return math.isfinite(float(value))
    except OverflowError:
        return False


def _check_value(value, where):
    if value is None or isinstance(value, bool):
        return
    if isinstance(value, int):
        if abs(value) > MAX_CONFIG_INT:
            raise ValueError(f"{where}: {value} is out of range (|value| <= {MAX_CONFIG_INT})")
    elif isinstance(value, float):
        if not math.isfinite(value):
            raise ValueError(f"{where}: expected a finite number, got {value}")
    elif isinstance(value, str):
        if len(value) > MAX_STRING:
            raise ValueError(f"{where}: string of {len(value)} characters (at most {MAX_STRING})")
    elif isinstance(value, list):
        if len(value) > MAX_LIST:
            raise ValueError(f"{where}: list of {len(value)} items (at most {MAX_LIST})")
        for i, item in enumerate(value):
            if isinstance(item, (list, dict)):
                raise ValueError(f"{where}[{i}]: expected a number, string, bool or null, got "
                                 f"{type(item).__name__}")
            _check_value(item, f"{where}[{i}]")
    else:
        raise ValueError(f"{where}: expected JSON data, got {type(value).__name__}")


def check_config(cls, config, where):
    """Check ``config`` (a dict) against ``cls``'s constructor; ValueError on anything odd.
    Values that are dicts must be nested layer specs and are checked by their own
    ``deserialize``."""
    if not isinstance(config, dict):
        raise ValueError(f"{where}: expected a config dict, got {type(config).__name__}")
    accepted, required, defaults = _arguments(cls)
    unknown = sorted(str(k) for k in config if k not in accepted)
    if unknown:
        raise ValueError(f"{where}: unknown argument(s) {unknown}; {cls.__name__} takes "
                         f"{sorted(accepted)}")
    missing = sorted(required - set(config))
    if missing:
        raise ValueError(f"{where}: missing argument(s) {missing}")
    for key, value in config.items():
        at = f"{where}.{key}"
        if isinstance(value, dict):
            if not {"class_name", "config"} <= set(value):
                raise ValueError(f"{at}: a dict value must be a layer spec "
                                 "{'class_name': ..., 'config': ...}")
            continue
        _check_value(value, at)
        if isinstance(defaults.get(key), bool) and not isinstance(value, bool):
            raise ValueError(f"{at}: expected true or false, got {value!r}")
        if key == "dtype" and value not in DTYPES:
            raise ValueError(f"{at}: expected one of {list(DTYPES)}, got {value!r}")


def deserialize(spec, where="layer"):
    """The layer a ``serialize`` spec describes, built by its class's ``from_config`` after
    ``check_config``; ValueError for anything that is not such a spec."""
    depth = _DEPTH.get()
    if depth >= MAX_DEPTH:
        raise ValueError(f"{where}: layers nested more than {MAX_DEPTH} deep")
    if not isinstance(spec, dict) or set(spec) != {"class_name", "config"}:
        keys = sorted(spec) if isinstance(spec, dict) else type(spec).__name__
        raise ValueError(f"{where}: expected {{'class_name': ..., 'config': ...}}, got {keys}")
    name = spec["class_name"]
    if not isinstance(name, str) or name not in _CLASSES:
        shown = name[:80] if isinstance(name, str) else name
        raise ValueError(f"{where}: unknown layer class {shown!r}; known: {sorted(_CLASSES)}")
    cls = _CLASSES[name]
    where = f"{where} ({name})"
    check_config(cls, spec["config"], where)
    token = _DEPTH.set(depth + 1)
    try:
        return cls.from_config(dict(spec["config"]))
    except (TypeError, ValueError, OverflowError, MemoryError) as exc:
        raise ValueError(f"{where}: {exc}") from None
    finally:
        _DEPTH.reset(token)
