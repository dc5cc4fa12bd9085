"""Type aliases of the functional API (for annotations only)."""
from typing import Any, Dict, Optional, Tuple, Union

import numpy as np
from numpy.typing import ArrayLike, NDArray

__all__ = ["Array", "ArrayLike", "Context", "Gradients", "Padding"]

#: A float32 or float64 NumPy array (the dtype of the call's inputs).
Array = NDArray[np.floating]
#: The opaque ctx a ``training=True`` forward returns for its backward.
Context = Any
#: Gradients keyed by the forward's argument names; None for arguments that were None.
Gradients = Dict[str, Optional[Array]]
#: Conv/pool padding: "valid", "same", "causal" (conv only), an int, or a (left, right) pair.
Padding = Union[str, int, Tuple[int, int]]
