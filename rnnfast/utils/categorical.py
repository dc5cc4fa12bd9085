"""``to_categorical``: integer class labels to one-hot rows (Keras' ``to_categorical``)."""
import numpy as np

__all__ = ["to_categorical"]


def to_categorical(y, num_classes=None, dtype="float32"):
    """One-hot encoding of the integer labels ``y`` (any shape): the result has ``y``'s shape
    plus a last axis of ``num_classes`` (default ``max(y) + 1``); a trailing axis of 1 in
    ``y`` (a column of labels) is dropped first, as Keras does::

        >>> to_categorical([0, 2, 1])
        array([[1., 0., 0.],
               [0., 0., 1.],
               [0., 1., 0.]], dtype=float32)
    """
    labels = np.asarray(y)
    if labels.dtype.kind == "f":
        if labels.size and not np.all(np.floor(labels) == labels):
            raise ValueError("y: expected integer class labels, got non-integer floats")
    elif labels.dtype.kind not in "iub":
        raise TypeError(f"y: expected integer class labels, got dtype {labels.dtype}")
    labels = labels.astype(np.int64)
    shape = labels.shape
    if len(shape) > 1 and shape[-1] == 1:
        shape = shape[:-1]
    labels = labels.reshape(-1)
    if labels.size and labels.min() < 0:
        raise ValueError(f"y: class labels must be >= 0, got {labels.min()}")
    if num_classes is None:
        num_classes = int(labels.max()) + 1 if labels.size else 0
    else:
        if isinstance(num_classes, bool) or not isinstance(num_classes, (int, np.integer)):
            raise TypeError(f"num_classes: expected an int, got {type(num_classes).__name__}")
        if num_classes < 1:
            raise ValueError(f"num_classes: expected an int >= 1, got {num_classes}")
        if labels.size and labels.max() >= num_classes:
            raise ValueError(f"y: class labels must be < num_classes = {num_classes}, got "
                             f"{labels.max()}")
    out = np.zeros((labels.size, int(num_classes)), dtype=dtype)
    out[np.arange(labels.size), labels] = 1
    return out.reshape(shape + (int(num_classes),))
