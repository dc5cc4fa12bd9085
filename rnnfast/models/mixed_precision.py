"""Keras' ``keras.mixed_precision`` names: ``set_global_policy("mixed_bfloat16")`` makes the
layers created afterwards (with ``dtype=None``, the default) keep float32 weights and run their
products in bfloat16 where a bfloat16 kernel exists (recurrent layers, Conv1D); a layer's own
``dtype="mixed_bfloat16"`` does the same for that layer. ``"float32"`` is the default policy."""
from rnnfast._policy import DTypePolicy, global_policy, set_global_policy

Policy = DTypePolicy  # Keras 2's name

__all__ = ["DTypePolicy", "Policy", "global_policy", "set_global_policy"]
