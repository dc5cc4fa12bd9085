"""One lookup for Keras' named objects (initializers, regularizers, constraints): from a Keras
name, a class name, an object, or the ``{"class_name": ..., "config": {...}}`` dict that
``serialize`` gives; nothing is looked up by a name outside the module's own tables."""


def lookup(identifier, name, kind, base, names, classes, expected):
    """``identifier`` as a ``base`` object. ``names``: Keras names -> classes (built with their
    defaults); ``classes``: class names -> classes; ``expected`` completes the TypeError's
    "expected ..." for anything else. ``name`` (the argument) and ``kind`` start the errors."""
    if isinstance(identifier, base):
        return identifier
    if isinstance(identifier, str):
        cls = names.get(identifier) or classes.get(identifier)
        if cls is None:
            raise ValueError(f"{name}: unknown {kind} {identifier!r}; known: {sorted(names)}")
        return cls()
    if isinstance(identifier, dict) and set(identifier) == {"class_name", "config"}:
        cls = classes.get(identifier["class_name"])
        config = identifier["config"]
        if cls is None or not isinstance(config, dict):
            raise ValueError(f"{name}: unknown {kind} {identifier['class_name']!r}; known: "
                             f"{sorted(classes)}")
        try:
            return cls(**config)
        except TypeError as exc:
            raise ValueError(f"{name}: {exc}") from None
    raise TypeError(f"{name}: expected {expected}, got {type(identifier).__name__}")


def class_config(obj):
    """``{"class_name": ..., "config": obj.get_config()}``, or None for None."""
    if obj is None:
        return None
    return {"class_name": type(obj).__name__, "config": obj.get_config()}
