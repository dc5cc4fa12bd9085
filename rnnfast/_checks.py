"""Argument checks shared by every layer of the package (errors name the argument)."""
import numpy as np

__all__ = ["PRECISIONS", "check_int", "check_precision", "check_probability"]

#: the values of every ``precision`` argument (the kernels' products)
PRECISIONS = ("float32", "bfloat16")


def check_int(value, name, minimum):
    """An int >= minimum, else TypeError/ValueError naming the argument."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"{name}: expected an int, got {type(value).__name__}")
    if value < minimum:
        raise ValueError(f"{name}: expected an int >= {minimum}, got {value}")
    return int(value)


def check_probability(value, name):
    """A float in [0, 1], else TypeError/ValueError naming the argument."""
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise TypeError(f"{name}: expected a float in [0, 1], got {type(value).__name__}")
    if not 0.0 <= value <= 1.0:
        raise ValueError(f"{name}: expected a float in [0, 1], got {value}")
    return float(value)


def check_precision(value, name="precision"):
    """``"float32"`` or ``"bfloat16"`` (``PRECISIONS``), else TypeError/ValueError naming the
    argument."""
    if not isinstance(value, str):
        raise TypeError(f"{name}: expected 'float32' or 'bfloat16', got {type(value).__name__}")
    if value not in PRECISIONS:
        raise ValueError(f"{name}: expected 'float32' or 'bfloat16', got {value!r}")
    return value
