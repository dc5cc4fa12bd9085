"""Keras' dtype policies for the Keras-style layers: ``"float32"`` and ``"mixed_bfloat16"``.

A layer's ``dtype`` argument is a NumPy float dtype (float32 or float64), a policy name, a
``DTypePolicy``, or None: the global policy (``set_global_policy``, read when the layer is
made, as in Keras). ``"mixed_bfloat16"`` keeps float32 variables and runs the layers that have
bfloat16 kernels (the recurrent layers and Conv1D) with ``precision="bfloat16"``; the others
compute in float32 (more precise than Keras, which computes them in bfloat16 too).
``rnnfast.models.mixed_precision`` gives these under Keras' names.
"""
import numpy as np

__all__ = ["DTypePolicy", "POLICIES", "global_policy", "policy_name", "resolve_dtype", "set_global_policy"]

#: policy name -> (variable dtype, precision of the products)
POLICIES = {"float32": ("float32", "float32"), "mixed_bfloat16": ("float32", "bfloat16")}


class DTypePolicy:
    """Keras' ``DTypePolicy``: ``name``, ``variable_dtype`` (always "float32" here) and
    ``compute_dtype`` ("float32" or "bfloat16"); ``precision`` is rnnfast's name of the
    latter."""

    def __init__(self, name="float32"):
        if isinstance(name, DTypePolicy):
            name = name.name
        if not isinstance(name, str):
            raise TypeError(f"policy: expected one of {sorted(POLICIES)} (a str), got "
                            f"{type(name).__name__}")
        if name not in POLICIES:
            hint = " (rnnfast has no float16 kernels)" if "float16" in name and \
                "bfloat16" not in name else ""
            raise ValueError(f"policy: expected one of {sorted(POLICIES)}, got {name!r}{hint}")
        self.name = name
        self.variable_dtype, self.precision = POLICIES[name]

    @property
    def compute_dtype(self):
        return self.precision

    def __eq__(self, other):
        return isinstance(other, DTypePolicy) and other.name == self.name

    def __hash__(self):
        return hash(self.name)

    def __repr__(self):
        return f'<DTypePolicy "{self.name}">'


_GLOBAL = [DTypePolicy("float32")]  # process-wide, as in Keras


def set_global_policy(policy):
    """Keras' ``set_global_policy``: the policy of the layers made from now on whose ``dtype``
    is None (a name of ``POLICIES``, a ``DTypePolicy``, or None for "float32")."""
    _GLOBAL[0] = DTypePolicy("float32" if policy is None else policy)


def global_policy():
    """The current global ``DTypePolicy``."""
    return _GLOBAL[0]


def policy_name(dtype, precision):
    """The ``dtype`` of a layer's config: ``"mixed_bfloat16"`` for bfloat16 products, else the
    variables' dtype name."""
    return "mixed_bfloat16" if precision == "bfloat16" else np.dtype(dtype).name


def resolve_dtype(dtype):
    """``(variable dtype, precision)`` of a layer's ``dtype`` argument: None (the global
    policy), a policy name or ``DTypePolicy``, or a float32/float64 NumPy dtype."""
    if dtype is None:
        dtype = global_policy()
    if isinstance(dtype, str) and dtype in POLICIES:
        dtype = DTypePolicy(dtype)
    if isinstance(dtype, DTypePolicy):
        return np.dtype(dtype.variable_dtype), dtype.precision
    try:
        dt = np.dtype(dtype)
    except TypeError:
        dt = None
    if dt is None or dt not in (np.dtype(np.float32), np.dtype(np.float64)):
        raise TypeError(f"dtype: expected float32, float64 or a policy name "
                        f"({', '.join(sorted(POLICIES))}), got {dtype!r}")
    return dt, "float32"
