"""Time series to supervised windows, a chronological split and min-max scaling.

The usual forecasting workflow (predict the next value of a series from the last
``window`` steps)::

    scaler = MinMaxScaler().fit(series[:n_train])         # statistics of the past only
    scaled = scaler.transform(series)
    x, y = sliding_windows(scaled, window=7, target=-1)     # x (N, 7, F), y (N, 1)
    (x_tr, y_tr), (x_va, y_va), (x_te, y_te) = chronological_split(x, y, val=0.15, test=0.15)

``chronological_split`` never shuffles: the validation windows come after the training ones
and the test windows after both, so no future value leaks into training.
"""
import numpy as np

from rnnfast._checks import check_int as _check_int

__all__ = ["sliding_windows", "build_dataset", "chronological_split", "MinMaxScaler"]


def _series(series):
    arr = np.asarray(series)
    if arr.dtype.kind not in "fiu":
        raise TypeError(f"series: expected a numeric array, got dtype {arr.dtype}")
    if arr.ndim == 1:
        arr = arr[:, None]
    if arr.ndim != 2:
        raise ValueError(f"series: expected a 1-D (steps,) or 2-D (steps, features) array, got "
                         f"shape {arr.shape}")
    return arr


def sliding_windows(series, window, horizon=1, target=None, stride=1):
    """Windows of ``window`` consecutive steps and the values ``horizon`` steps after each.

    ``series`` is ``(steps,)`` or ``(steps, features)``. Returns ``x`` of shape
    ``(N, window, features)`` with ``x[i] = series[i*stride : i*stride + window]`` and ``y`` of
    shape ``(N, len(target))``: ``y[i] = series[i*stride + window + horizon - 1, target]``.
    ``target`` is a column index or a list of them (None: every column).
    ``N = (steps - window - horizon) // stride + 1``.
    """
    arr = _series(series)
    window = _check_int(window, "window", 1)
    horizon = _check_int(horizon, "horizon", 1)
    stride = _check_int(stride, "stride", 1)
    features = arr.shape[1]
    if target is None:
        cols = list(range(features))
    else:
        cols = [target] if isinstance(target, (int, np.integer)) else list(target)
        for c in cols:
            if isinstance(c, bool) or not isinstance(c, (int, np.integer)):
                raise TypeError(f"target: expected column indices (ints), got {target!r}")
            if not -features <= c < features:
                raise ValueError(f"target: column {c} is out of range for a series of "
                                 f"{features} feature(s)")
    count = (arr.shape[0] - window - horizon) // stride + 1
    if count < 1:
        raise ValueError(f"series: {arr.shape[0]} steps are too few for one window of "
                         f"{window} steps plus a horizon of {horizon}")
    starts = np.arange(count) * stride
    x = arr[starts[:, None] + np.arange(window)[None, :]]
    y = arr[starts + window + horizon - 1][:, cols]
    return x, y


def build_dataset(time_series, seq_length, target=-1):
    """``dataX, dataY`` of the classic forecasting recipe: ``dataX[i]`` is
    ``time_series[i:i+seq_length]`` and ``dataY[i]`` is ``time_series[i+seq_length, [target]]``
    (the next step's target column, shape ``(N, 1)``)."""
    return sliding_windows(time_series, seq_length, horizon=1, target=[target])


def chronological_split(*arrays, val=0.0, test=0.2):
    """Split arrays of equal length along their first axis in time order: the first
    ``1 - val - test`` part for training, the next ``val`` for validation, the last ``test``
    for testing. Returns one tuple per part (the validation part only when ``val > 0``)."""
    if not arrays:
        raise ValueError("arrays: expected at least one array")
    arrays = [np.asarray(a) for a in arrays]
    n = len(arrays[0])
    for i, a in enumerate(arrays):
        if a.ndim == 0 or len(a) != n:
            raise ValueError(f"arrays[{i}]: expected {n} rows like arrays[0], got shape {a.shape}")
    for name, frac in (("val", val), ("test", test)):
        if isinstance(frac, bool) or not isinstance(frac, (int, float, np.floating)):
            raise TypeError(f"{name}: expected a fraction in [0, 1), got {type(frac).__name__}")
        if not 0 <= frac < 1:
            raise ValueError(f"{name}: expected a fraction in [0, 1), got {frac}")
    if val + test >= 1:
        raise ValueError(f"val + test: expected < 1 (something left to train on), got "
                         f"{val + test}")
    n_test = int(round(n * test))
    n_val = int(round(n * val))
    n_train = n - n_val - n_test
    if n_train < 1 or (val > 0 and n_val < 1) or (test > 0 and n_test < 1):
        raise ValueError(f"arrays: {n} rows are too few for the split val={val}, test={test}")
    bounds = [(0, n_train)]
    if val > 0:
        bounds.append((n_train, n_train + n_val))
    bounds.append((n - n_test, n))
    return tuple(tuple(a[lo:hi] for a in arrays) for lo, hi in bounds)


class MinMaxScaler:
    """Scale each feature (column) to ``feature_range`` with the minimum and maximum seen by
    ``fit`` (fit on the training part only); ``inverse_transform`` undoes it."""

    def __init__(self, feature_range=(0.0, 1.0)):
        lo, hi = feature_range
        if not lo < hi:
            raise ValueError(f"feature_range: expected (min, max) with min < max, got "
                             f"{feature_range!r}")
        self.feature_range = (float(lo), float(hi))
        self.data_min_ = self.data_max_ = None

    def fit(self, data):
        arr = np.asarray(data, dtype=np.float64)
        if arr.ndim not in (1, 2) or len(arr) == 0:
            raise ValueError(f"data: expected a non-empty (rows,) or (rows, features) array, "
                             f"got shape {arr.shape}")
        self.data_min_ = arr.min(axis=0)
        self.data_max_ = arr.max(axis=0)
        return self

    def _scale(self):
        if self.data_min_ is None:
            raise RuntimeError("MinMaxScaler: call fit() first")
        span = self.data_max_ - self.data_min_
        span = np.where(span == 0, 1.0, span)
        lo, hi = self.feature_range
        return (hi - lo) / span, lo

    def transform(self, data):
        scale, lo = self._scale()
        arr = np.asarray(data, dtype=np.float64)
        return (arr - self.data_min_) * scale + lo

    def fit_transform(self, data):
        return self.fit(data).transform(data)

    def inverse_transform(self, data, columns=None):
        """Undo ``transform``; ``columns`` picks the features ``data`` holds (e.g. ``[-1]`` for
        predictions of the last column only)."""
        scale, lo = self._scale()
        data_min = self.data_min_
        if columns is not None:
            scale, data_min = np.atleast_1d(scale)[columns], np.atleast_1d(data_min)[columns]
        return (np.asarray(data, dtype=np.float64) - lo) / scale + data_min
