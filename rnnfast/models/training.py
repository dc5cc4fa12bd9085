"""The one training engine of ``Sequential`` and the functional ``Model``: ``BaseModel``
(``compile``, ``fit``, ``evaluate``, ``predict``, weights, saving) and the loops behind it:
argument checks, batching, the training step (forward, loss, backward, clipping, optimiser
step), metrics, progress output, callbacks and Ctrl-C.

The engine sees every model as lists: its inputs, its outputs and, per output, a ``Head``
(the output's name, loss, loss weight and metrics). A model provides

- ``_engine_inputs(x, name)``: the input arrays (one per model input, as many rows each);
- ``_engine_targets(y, n, name)``: the target arrays (one per output with a loss; None for the
  others);
- ``_engine_check(xs)``: build the model for these inputs and check their shapes; it sets
  ``output_shapes`` of the outputs (``_engine_output_shapes()``);
- ``_engine_forward(xs)``: the outputs (a list) in the current mode; it sets
  ``_engine_masks`` (the padding mask reaching each output, or None);
- ``_engine_backward(grads)``: the gradient pass from the outputs' gradients (None: no loss).

``Sequential`` is the case of one input and one output; the functional ``Model`` has several of
each. With several outputs the loss is ``sum(loss_weight * loss)`` over the outputs with a loss,
and the logs name each part Keras' way: ``loss``, ``<output>_loss``, ``<output>_<metric>``.

Sample weights and masks follow Keras: ``sample_weight`` (one row per sample: ``(N,)``, or
``(N, T)`` for a model with one output per step) weights the loss as ``rnnfast.losses`` says,
and the metrics as weighted means ``sum(w * value) / sum(w)``. When the padding mask of an
``Embedding(mask_zero=True)`` reaches the model's output (a many-to-many model), the loss is
averaged over the real steps only and the metrics ignore the padded ones (the mask multiplies
the sample weights). The epoch's loss is the mean of the batch losses, each weighted by its
number of samples.

Ctrl-C during ``fit`` (in the main thread) is deferred: the current batch finishes, training
stops there and ``fit`` returns the history of the completed epochs (``history.interrupted``
is True) with the weights of the last completed batch. A second Ctrl-C interrupts at once
(raising KeyboardInterrupt), except during a weight update (clipping and the optimiser's
step), which completes first: the weights are those before or after a whole batch, never
half-updated. A KeyboardInterrupt raised by a callback stops training the same clean way.

A callback's ``on_train_begin`` may set ``model._initial_epoch`` (as Keras'
``BackupAndRestore`` does) to resume an interrupted run at that epoch.
"""
import contextlib
import copy
import numbers
import signal
import threading
import time

import numpy as np

from rnnfast import _C, losses, optim
from rnnfast.models import metrics as metrics_mod
from rnnfast.models import optimizers as optimizers_mod
from rnnfast.models import saving
from rnnfast.models import constraints, regularizers
from rnnfast.models.callbacks import CallbackList, History
from rnnfast.nn.module import Module, as_array, make_rng
from rnnfast.utils.progress import Progbar, format_seconds

__all__ = ["BaseModel", "Head", "fit", "evaluate", "predict"]


# arguments ----------------------------------------------------------------------------------
def _int_arg(value, name, minimum, default=None):
    if value is None and default is not None:
        return default
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"{name}: expected an int, got {type(value).__name__}")
    if value < minimum:
        raise ValueError(f"{name}: expected an int >= {minimum}, got {value}")
    return int(value)


def _verbosity(verbose):
    if verbose == "auto":
        return 1
    if isinstance(verbose, bool) or verbose not in (0, 1, 2):
        raise ValueError(f"verbose: expected 0, 1, 2 or 'auto', got {verbose!r}")
    return int(verbose)


def _positive(value, name):
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise TypeError(f"{name}: expected a positive number or None, got {type(value).__name__}")
    if not value > 0:
        raise ValueError(f"{name}: expected a positive number or None, got {value}")
    return float(value)


def per_sample(value, n, name, what):
    """value (array-like or CPU tensor) as a numeric array with one row per sample of x
    (TypeError / ValueError if not)."""
    arr = as_array(value)
    if arr.dtype.kind not in "fiub":
        raise TypeError(f"{name}: expected numeric {what}, got dtype {arr.dtype}")
    if arr.ndim < 1 or len(arr) != n:
        raise ValueError(f"{name}: expected {n} rows (one per sample of x), got shape "
                         f"{arr.shape}")
    return arr


def targets(y, n, name="y"):
    if y is None:
        raise ValueError(f"{name}: expected target values (labels), got None")
    return per_sample(y, n, name, "targets")


def by_output(value, names, what, name):
    """``value`` given for several outputs (a list in output order or a dict by output name)
    as a list; a single value is None here (the caller decides)."""
    if isinstance(value, dict):
        unknown = [k for k in value if k not in names]
        if unknown:
            raise ValueError(f"{name}: unknown output name(s) {unknown}; the outputs are "
                             f"{names}")
        return [value.get(k) for k in names]
    if isinstance(value, (list, tuple)):
        if len(value) != len(names):
            raise ValueError(f"{name}: expected {len(names)} {what} (one per output {names}), "
                             f"got {len(value)}")
        return list(value)
    return None


def _data(model, x, y, name="x", yname="y"):
    if x is None:
        raise ValueError(f"{name}: expected input data, got None")
    xs = model._engine_inputs(x, name)
    return xs, model._engine_targets(y, len(xs[0]), yname)


def _weights_array(w, n, name):
    if w is None:
        return None
    arr = per_sample(w, n, name, "weights")
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"{name}: expected finite weights, got inf or nan")
    return arr


def _sample_weights(model, w, n, name="sample_weight"):
    """One weight array (or None) per output: Keras' ``sample_weight`` (an array for every
    output, or a list / dict by output name)."""
    heads = model._heads
    names = [h.name for h in heads]
    per = by_output(w, names, "weight arrays", name) if len(heads) > 1 else None
    if per is None:
        arr = _weights_array(w, n, name)
        return [arr] * len(heads)
    return [_weights_array(v, n, f"{name}[{names[i]!r}]") for i, v in enumerate(per)]


def check_sample_weights(w, output_shape, name="sample_weight"):
    """``w`` checked against an output of ``output_shape``: its shape must start the shape of
    the per-sample losses, ``(N,) + output_shape[1:-1]``; a trailing axis of 1 beyond it is
    dropped."""
    if w is None or output_shape is None:
        return w
    out = tuple(output_shape[1:])
    shape = (len(w),) + (out[:-1] if out else ())
    losses._weight_array(w, name, shape)  # raises with the expected shape
    if w.ndim > 1 and w.shape[-1] == 1 and w.shape != shape[:w.ndim]:
        w = w[..., 0]
    return w


def check_targets(loss, output_shape, y, name="y"):
    """Clear errors for labels that do not fit an output of ``output_shape`` and its loss."""
    out = output_shape
    if out is None or y is None:
        return
    given = y.shape[1:]
    want = tuple(out[1:])
    if None in want:
        return
    if isinstance(loss, losses.SparseCategoricalCrossentropy):
        ok = given in (want[:-1], want[:-1] + (1,))
        hint = (" They look one-hot: use loss='categorical_crossentropy'." if given == want
                else "")
        expected = f"integer class labels of shape (N,{''.join(f' {d},' for d in want[:-1])})"
    elif isinstance(loss, losses.CategoricalCrossentropy):
        ok = given == want
        hint = (f" They look like integer labels: use loss='sparse_categorical_crossentropy' "
                f"or to_categorical({name}, {want[-1]})." if given in (want[:-1], want[:-1] + (1,))
                and want[-1] > 1 else "")
        expected = f"one-hot labels of shape {(None,) + want}"
    elif isinstance(loss, (losses.BinaryCrossentropy, losses.MeanSquaredError,
                           losses.MeanAbsoluteError)):
        ok = given == want or (want and want[-1] == 1 and given == want[:-1])
        hint = ""
        expected = f"targets of shape {(None,) + want}"
    else:
        return
    if not ok:
        raise ValueError(f"{name}: wrong target shape for loss {type(loss).__name__}: the model "
                         f"outputs {(None,) + want}, so it expects {expected}; got "
                         f"{y.shape}.{hint}")
    if isinstance(loss, losses.SparseCategoricalCrossentropy) and y.size:
        if y.dtype.kind == "f" and not np.all(np.floor(y) == y):
            raise ValueError(f"{name}: expected integer class labels, got non-integer floats")
        if y.min() < 0 or y.max() >= want[-1]:
            bad = y.min() if y.min() < 0 else y.max()
            raise ValueError(f"{name}: class labels must be in 0..{want[-1] - 1} (the model has "
                             f"{want[-1]} outputs), got {bad}")


def _check_all(model, xs, ys, ws, yname="y", wname="sample_weight"):
    """Build and check the model on xs; check each output's targets and weights."""
    if len(xs[0]):
        model._engine_check(xs)
    else:
        model._engine_build(xs)
    shapes = model._engine_output_shapes()
    multi = len(model._heads) > 1
    out_ws = []
    for i, head in enumerate(model._heads):
        suffix = f"[{head.name!r}]" if multi else ""
        if head.loss is not None:
            check_targets(head.loss, shapes[i], ys[i], yname + suffix)
        out_ws.append(check_sample_weights(ws[i], shapes[i], wname + suffix))
    return out_ws


def _take(arrays, idx):
    """The samples ``idx`` (a slice, or an index array: ``take``, the same rows as ``a[idx]``
    in one copy without the fancy index's machinery) of each array (None stays None)."""
    if isinstance(idx, np.ndarray):
        return [None if a is None else a.take(idx, axis=0) if a.__class__ is np.ndarray
                else a[idx] for a in arrays]
    return [None if a is None else a[idx] for a in arrays]


def _split_validation(x, y, w, validation_split, validation_data, model):
    if validation_data is not None:
        if validation_split:
            raise ValueError("validation_split, validation_data: give at most one of them")
        if not isinstance(validation_data, tuple) or len(validation_data) not in (2, 3):
            if not (isinstance(validation_data, list) and len(validation_data) in (2, 3)):
                raise ValueError("validation_data: expected a tuple (x_val, y_val) or (x_val, "
                                 "y_val, sample_weight_val)")
        xv, yv = _data(model, *validation_data[:2], name="validation_data[0]",
                       yname="validation_data[1]")
        wv = _sample_weights(model, validation_data[2] if len(validation_data) == 3 else None,
                             len(xv[0]), "validation_data[2]")
        return x, y, w, (xv, yv, wv)
    if isinstance(validation_split, bool) or \
            not isinstance(validation_split, (int, float, np.floating)) or \
            not 0 <= validation_split < 1:
        raise ValueError(f"validation_split: expected a fraction in [0, 1), got "
                         f"{validation_split!r}")
    if not validation_split:
        return x, y, w, None
    n = len(x[0])
    split = int(n * (1 - validation_split))  # Keras: the last samples, before shuffling
    if split < 1 or split >= n:
        raise ValueError(f"validation_split: {validation_split} of {n} samples leaves no "
                         "training or no validation samples")
    first, last = slice(None, split), slice(split, None)
    return (_take(x, first), _take(y, first), _take(w, first),
            (_take(x, last), _take(y, last), _take(w, last)))


# compile ------------------------------------------------------------------------------------
class Head:
    """One output's training settings: its ``name``, ``loss`` (an ``rnnfast.losses.Loss`` or
    None: not trained), ``weight`` (Keras' loss weight), ``metrics`` (``(name, fn)`` pairs) and
    ``metric_specs`` (as given to compile)."""

    def __init__(self, name, loss, weight=1.0, metrics=(), metric_specs=()):
        self.name = name
        self.loss = loss
        self.weight = weight
        self.metrics = list(metrics)
        self.metric_specs = list(metric_specs)

    @property
    def needs_targets(self):
        return self.loss is not None or bool(self.metrics)


def _metric_list(metrics, name):
    if metrics is None:
        return []
    if isinstance(metrics, str) or callable(metrics):
        return [metrics]
    if not isinstance(metrics, (list, tuple)):
        raise TypeError(f"{name}: expected a list of metric names or functions, got "
                        f"{type(metrics).__name__}")
    return list(metrics)


def resolve_heads(names, loss, metrics=None, loss_weights=None):
    """The ``Head`` of each output (``names``) from compile's ``loss``, ``metrics`` and
    ``loss_weights``: each a single value (for every output), a list in output order or a
    dict by output name (Keras' forms)."""
    if loss is None:
        raise ValueError("loss: compile() needs a loss, e.g. loss='mse' or "
                         "loss='categorical_crossentropy'")
    n = len(names)
    per_loss = by_output(loss, names, "losses", "loss") if n > 1 or isinstance(
        loss, (list, tuple, dict)) else None
    if per_loss is None:
        per_loss = [loss] + [copy.deepcopy(loss) if isinstance(loss, losses.Loss) else loss
                             for _ in range(n - 1)]
    if all(v is None for v in per_loss):
        raise ValueError("loss: compile() needs a loss for at least one output")
    loss_objs = [None if v is None else losses.get(v) for v in per_loss]
    if isinstance(metrics, dict) or (isinstance(metrics, (list, tuple)) and metrics and
                                     all(m is None or isinstance(m, (list, tuple))
                                         for m in metrics)):
        per_metrics = by_output(metrics, names, "metric lists", "metrics")
    else:
        per_metrics = [_metric_list(metrics, "metrics")] * n
    if isinstance(loss_weights, (list, tuple, dict)):
        per_weight = by_output(loss_weights, names, "loss weights", "loss_weights")
    else:
        per_weight = [loss_weights] * n
    heads = []
    for i, out_name in enumerate(names):
        where = f"[{out_name!r}]" if n > 1 else ""
        weight = 1.0 if per_weight[i] is None else per_weight[i]
        if isinstance(weight, bool) or not isinstance(weight, numbers.Real) or \
                not np.isfinite(weight) or weight < 0:
            raise ValueError(f"loss_weights{where}: expected a finite number >= 0, got "
                             f"{weight!r}")
        specs = _metric_list(per_metrics[i], f"metrics{where}")
        resolved = [metrics_mod.get(m, loss_objs[i]) for m in specs]
        metric_names = [m for m, _ in resolved]
        if len(set(metric_names)) != len(metric_names):
            raise ValueError(f"metrics{where}: duplicate names {metric_names}")
        heads.append(Head(out_name, loss_objs[i], float(weight), resolved, specs))
    return heads


def log_names(heads):
    """Keras' names of the logged values: ``loss`` and the metrics for one output;
    ``loss``, ``<output>_loss`` and ``<output>_<metric>`` for several."""
    if len(heads) == 1:
        return ["loss"] + [m for m, _ in heads[0].metrics]
    names = ["loss"] + [f"{h.name}_loss" for h in heads if h.loss is not None]
    return names + [f"{h.name}_{m}" for h in heads for m, _ in h.metrics]


# one step -----------------------------------------------------------------------------------
def _clip(model):
    params = [p for p in model.parameters() if p.grad is not None]
    if not params:
        return
    if model.clip["clipnorm"] is not None:
        for p in params:
            optim.clip_grad_norm_([p], model.clip["clipnorm"])
    if model.clip["global_clipnorm"] is not None:
        optim.clip_grad_norm_(params, model.clip["global_clipnorm"])
    if model.clip["clipvalue"] is not None:
        optim.clip_grad_value_(params, model.clip["clipvalue"])


def _metric_weights(w, mask):
    """The weights of the metrics' values: the sample weights times the output's mask (None:
    unweighted)."""
    if mask is None:
        return None if w is None else w.astype(np.float64)
    m = mask.astype(np.float64)
    if w is None:
        return m
    w = w.astype(np.float64)
    if w.ndim < m.ndim:
        w = w.reshape(w.shape + (1,) * (m.ndim - w.ndim))
    return w * m


def _metric_sums(head, y, out, weights):
    """``(sum, count)`` of each of the head's metrics over the batch: ``mean(value) * n, n``
    unweighted, else ``sum(w * value), sum(w)`` (values averaged over the axes the weights do
    not have)."""
    sums = []
    for name, fn in head.metrics:
        values = np.asarray(fn(y, out), dtype=np.float64)
        if weights is None:
            sums.append((losses._mean(values) * len(out), len(out)))
            continue
        if values.shape[:weights.ndim] != weights.shape:
            raise ValueError(f"metrics: {name!r} gives values of shape {values.shape}, which "
                             f"the sample weights / mask of shape {weights.shape} cannot weight")
        if values.ndim > weights.ndim:
            values = values.mean(axis=tuple(range(weights.ndim, values.ndim)))
        sums.append((float(np.sum(values * weights)), float(np.sum(weights))))
    return sums


def _batch_loss(loss, yb, out, wb, mask):
    if wb is None and mask is None:  # also a Loss subclass with forward(y, p)
        return loss.forward(yb, out)
    return loss.forward(yb, out, sample_weight=wb, mask=mask)


def _losses_and_metrics(model, outs, yb, wb):
    """``(total loss, [each output's loss], [metric (sum, count)], [loss gradients])``."""
    masks = model._engine_masks
    total, parts, sums, grads = 0.0, [], [], []
    for i, head in enumerate(model._heads):
        grad = None
        if head.loss is not None:
            value = _batch_loss(head.loss, yb[i], outs[i], wb[i], masks[i])
            total += head.weight * value
            parts.append(value)
            grad = head.loss.backward()
            if head.weight != 1.0:
                grad = grad * grad.dtype.type(head.weight)
        grads.append(grad)
    for i, head in enumerate(model._heads):
        if head.metrics:
            sums += _metric_sums(head, yb[i], outs[i], _metric_weights(wb[i], masks[i]))
    return total, parts, sums, grads


def train_step(model, xb, yb, wb, update_guard=contextlib.nullcontext):
    """One optimiser step on a batch (lists: inputs, targets and sample weights per output);
    returns the loss, each output's loss and the metrics' ``(sum, count)`` pairs before the
    step. The weight update (clipping and the step) runs inside ``update_guard()``."""
    model.train()
    outs = model._engine_forward(xb)
    total, parts, sums, grads = _losses_and_metrics(model, outs, yb, wb)
    total += regularizers.penalty(model)
    model.zero_grad()
    model._engine_backward(grads)  # the layers add their regularizers' gradients
    with update_guard():
        _clip(model)
        model.optimizer.step()
        constraints.apply(model)
    return total, parts, sums


class _Means:
    """Running means of the loss and of each output's loss (each batch weighted by its
    samples) and of the metrics (sums of weighted values over sums of weights)."""

    def __init__(self, names, multi):
        self.names = names
        self.multi = multi
        # Python floats: each sum and quotient rounded as float64 arrays would round it
        self.sums = [0.0] * len(names)
        self.counts = [0.0] * len(names)

    def add(self, loss_value, parts, n, metric_sums):
        pairs = [(loss_value * n, n)]
        if self.multi:
            pairs += [(v * n, n) for v in parts]
        pairs += list(metric_sums)
        if len(pairs) != len(self.names):
            raise ValueError(f"expected {len(self.names)} (sum, count) pairs, got {len(pairs)}")
        self.sums = [s + float(v) for s, (v, _) in zip(self.sums, pairs)]
        self.counts = [s + float(c) for s, (_, c) in zip(self.counts, pairs)]

    def logs(self, prefix=""):
        if not self.counts[0]:
            return {}
        return {prefix + k: v / c if c else 0.0
                for k, v, c in zip(self.names, self.sums, self.counts)}


def _new_means(model):
    return _Means(log_names(model._heads), len(model._heads) > 1)


# Ctrl-C -------------------------------------------------------------------------------------
@contextlib.contextmanager
def deferred_sigint():
    """While active (main thread only), the first SIGINT sets ``state["pending"]`` instead of
    raising; a second one raises KeyboardInterrupt, at once or, inside ``state["atomic"]()``,
    when that block ends."""
    state = {"pending": False, "forced": False, "in_atomic": False,
             "atomic": contextlib.nullcontext}
    if threading.current_thread() is not threading.main_thread():
        yield state
        return
    previous = signal.getsignal(signal.SIGINT)
    if previous is signal.SIG_IGN or previous is None:
        yield state
        return

    def handler(signum, frame):
        if state["pending"]:
            state["forced"] = True
            if not state["in_atomic"]:
                raise KeyboardInterrupt
        state["pending"] = True

    @contextlib.contextmanager
    def atomic():
        state["in_atomic"] = True
        try:
            yield
        finally:
            state["in_atomic"] = False
        if state["forced"]:
            raise KeyboardInterrupt

    state["atomic"] = atomic

    signal.signal(signal.SIGINT, handler)
    try:
        yield state
    finally:
        signal.signal(signal.SIGINT, previous)


# loops --------------------------------------------------------------------------------------
@contextlib.contextmanager
def array_memory():
    """The scope of a training loop's NumPy arrays: within it (in the calling thread's
    context only), the large blocks of freed arrays are kept for the next arrays of their size
    (``csrc/bindings/array_memory.cc``), so that every batch gets warm pages; the kept blocks
    are freed when the last such scope ends. Nothing is installed when the program set its own
    NumPy memory handler."""
    previous = _C._array_memory_enter()
    try:
        yield
    finally:
        _C._array_memory_exit(previous)


def _epoch_line(epoch, epochs, seconds, steps, logs):
    stats = "".join(f" - {k}: {v:.4f}" for k, v in logs.items())
    return (f"Epoch {epoch + 1}/{epochs} - {seconds:.2f}s "
            f"({format_seconds(seconds / max(steps, 1))}/step){stats}")


def fit(model, x, y, batch_size, epochs, verbose, callbacks, validation_split, validation_data,
        shuffle, initial_epoch, sample_weight=None):
    x, y = _data(model, x, y)
    w = _sample_weights(model, sample_weight, len(x[0]))
    batch_size = _int_arg(batch_size, "batch_size", 1, default=32)
    epochs = _int_arg(epochs, "epochs", 0)
    initial_epoch = _int_arg(initial_epoch, "initial_epoch", 0)
    verbose = _verbosity(verbose)
    x, y, w, val = _split_validation(x, y, w, validation_split, validation_data, model)
    if len(x[0]) == 0:
        raise ValueError("x: expected at least one training sample, got 0")
    w = _check_all(model, x, y, w)
    if val is not None:
        val = val[:2] + (_check_all(model, val[0], val[1], val[2], "validation y",
                                    "validation sample_weight"),)
    n = len(x[0])
    steps = -(-n // batch_size)
    history = History()
    history.params = {"epochs": epochs, "steps": steps, "verbose": verbose}
    cbs = CallbackList(callbacks, model, history.params)
    model.stop_training = False
    position = {"epoch": initial_epoch, "batch": 0, "in_step": False}
    with deferred_sigint() as sigint, array_memory():
        try:
            model._initial_epoch = None
            cbs.call("on_train_begin", {})
            if model._initial_epoch is not None:  # a BackupAndRestore resumes here
                initial_epoch = model._initial_epoch
                position["epoch"] = initial_epoch
            for epoch in range(initial_epoch, epochs):
                position.update(epoch=epoch, batch=0)
                cbs.call("on_epoch_begin", epoch, {})
                bar = Progbar(steps, enabled=None if verbose == 1 else False)
                listened = bool(cbs.callbacks) or bar.enabled  # anyone reading a batch's logs
                if bar.enabled:
                    print(f"Epoch {epoch + 1}/{epochs}")
                order = model.rng.permutation(n) if shuffle else np.arange(n)
                means = _new_means(model)
                start = time.perf_counter()
                for b in range(steps):
                    if sigint["pending"]:
                        raise KeyboardInterrupt
                    position["batch"] = b
                    if listened:
                        cbs.call("on_train_batch_begin", b, means.logs())
                    idx = order[b * batch_size:(b + 1) * batch_size]
                    position["in_step"] = True
                    loss_value, parts, sums = train_step(model, _take(x, idx), _take(y, idx),
                                                         _take(w, idx), sigint["atomic"])
                    position["in_step"] = False
                    means.add(loss_value, parts, len(idx), sums)
                    if listened:
                        logs = means.logs()
                        cbs.call("on_train_batch_end", b, logs)
                        bar.update(b + 1, list(logs.items()))
                    if model.stop_training:
                        break
                if sigint["pending"]:
                    raise KeyboardInterrupt
                logs = means.logs()
                if val is not None:
                    logs.update(_evaluate_arrays(model, *val, batch_size, prefix="val_"))
                if sigint["pending"]:
                    raise KeyboardInterrupt
                seconds = time.perf_counter() - start
                cbs.call("on_epoch_end", epoch, logs)
                history.record(epoch, logs, seconds)  # last, as Keras' History: it keeps
                # what callbacks add (ReduceLROnPlateau's "learning_rate")
                if bar.enabled:
                    bar.finish(list(logs.items()))
                elif verbose:
                    print(_epoch_line(epoch, epochs, seconds, steps, logs))
                if model.stop_training:
                    break
        except KeyboardInterrupt:
            if position["in_step"] or sigint["forced"]:
                raise
            history.interrupted = True
            if verbose:
                print(f"\nTraining interrupted at epoch {position['epoch'] + 1}/{epochs}, batch "
                      f"{position['batch'] + 1}/{steps}; the weights are those after the last "
                      "completed batch.")
        finally:
            model.eval()
        cbs.call("on_train_end", {})
    return history


def _batches(n, batch_size):
    for start in range(0, n, batch_size):
        yield slice(start, min(start + batch_size, n))


def _evaluate_arrays(model, x, y, w, batch_size, prefix="", bar=None):
    means = _new_means(model)
    model.eval()
    for b, sl in enumerate(_batches(len(x[0]), batch_size)):
        outs = model._engine_forward(_take(x, sl))
        total, parts, sums, _ = _losses_and_metrics(model, outs, _take(y, sl), _take(w, sl))
        total += regularizers.penalty(model)
        means.add(total, parts, sl.stop - sl.start, sums)
        if bar is not None:
            bar.update(b + 1, list(means.logs().items()))
    return means.logs(prefix)


def evaluate(model, x, y, batch_size, verbose, return_dict, sample_weight=None):
    x, y = _data(model, x, y)
    w = _sample_weights(model, sample_weight, len(x[0]))
    batch_size = _int_arg(batch_size, "batch_size", 1, default=32)
    verbose = _verbosity(verbose)
    if len(x[0]) == 0:
        raise ValueError("x: expected at least one sample, got 0")
    w = _check_all(model, x, y, w)
    bar = Progbar(-(-len(x[0]) // batch_size), enabled=None if verbose else False)
    with array_memory():
        logs = _evaluate_arrays(model, x, y, w, batch_size, bar=bar)
    bar.finish(list(logs.items()))
    if return_dict:
        return logs
    values = list(logs.values())
    return values[0] if len(values) == 1 else values


def predict(model, x, batch_size, verbose):
    """The outputs for ``x`` in inference mode: an array for a model with one output, else a
    list (one array per output)."""
    xs = model._engine_inputs(x, "x")
    batch_size = _int_arg(batch_size, "batch_size", 1, default=32)
    verbose = _verbosity(verbose)
    model._engine_build(xs)
    saved = [(m, m.training) for _, m in model.named_modules()]
    model.eval()
    n = len(xs[0])
    try:
        with array_memory():
            steps = -(-n // batch_size)
            bar = Progbar(steps, enabled=None if verbose else False)
            outputs = []
            for b, sl in enumerate(_batches(n, batch_size)):
                outputs.append(model._engine_forward(_take(xs, sl)))
                bar.update(b + 1)
            bar.finish()
    finally:
        for module, mode in saved:
            object.__setattr__(module, "training", mode)
    if not outputs:
        result = [np.zeros((0,) + tuple(d or 0 for d in shape[1:]) if shape else (0,),
                           np.float32) for shape in model._engine_output_shapes()]
    else:
        result = [np.concatenate(parts, axis=0) for parts in zip(*outputs)]
    return result[0] if len(result) == 1 else result


# the models' common part --------------------------------------------------------------------
class BaseModel(Module):
    """What ``Sequential`` and the functional ``Model`` share: Keras' ``compile``, ``fit``,
    ``evaluate``, ``predict``, weights and saving, over the engine protocol of this module."""

    # a Conv1D whose output only a MaxPooling1D takes is differentiated with it in one call
    # (only the windows' winners have gradients); False runs the two backwards one after the
    # other (A/B)
    _fuse_conv_pool = True
    # with _fuse_conv_pool, such a pair's forward runs as one call too, which pools each block
    # of the convolution's output while in cache and never stores that output
    # (Conv1D.forward_pooled); False calls the two layers (A/B)
    _fuse_conv_pool_forward = True
    # an Embedding's lookup and the Dropout after it run as one pass in Sequential's forward,
    # and their backwards as one (the same values, masks and gradients); False calls the two
    # layers (A/B)
    _fuse_embedding_dropout = True

    def _init_training(self, seed):
        self.rng = make_rng(seed)
        self.stop_training = False
        self._heads = []
        self.optimizer = None
        self.clip = {"clipnorm": None, "clipvalue": None, "global_clipnorm": None}
        self._optimizer_spec = None
        self.optimizer_name = None

    # compile settings of the first output (a Sequential's only one)
    @property
    def loss(self):
        return self._heads[0].loss if self._heads else None

    @property
    def metrics(self):
        return self._heads[0].metrics if self._heads else []

    @property
    def metric_specs(self):
        return self._heads[0].metric_specs if self._heads else []

    def _output_names(self):
        raise NotImplementedError

    def compile(self, optimizer="rmsprop", loss=None, metrics=None, loss_weights=None, *,
                clipnorm=None, clipvalue=None, global_clipnorm=None):
        """Choose the loss (a Keras name such as ``"categorical_crossentropy"`` or an
        ``rnnfast.losses.Loss``), the optimiser (Keras' ``Adam(learning_rate=...)``,
        ``SGD``, ``RMSprop``, ``Adagrad``, ``AdamW`` of ``rnnfast.models.optimizers``, bound here
        to the model's parameters; a name ``"adam"``, ``"rmsprop"``, ``"sgd"``, ``"adamw"``; an
        ``rnnfast.optim.Optimizer`` or a factory ``params -> Optimizer``), the
        metrics (``["accuracy"]``, ...) and gradient clipping as Keras' optimisers do it:
        ``clipnorm`` (each gradient's norm), ``global_clipnorm`` (all together), ``clipvalue``
        (each element).

        A model with several outputs takes ``loss``, ``metrics`` and ``loss_weights`` per
        output as a list (in output order) or a dict by output name (None, or a name left
        out: that output is not trained); a single loss or metric list applies to every
        output. The loss minimised is ``sum(loss_weights[i] * loss_i)``."""
        heads = resolve_heads(self._output_names(), loss, metrics, loss_weights)
        spec = optimizers_mod.resolve(optimizer)
        clip = {"clipnorm": _positive(clipnorm, "clipnorm"),
                "clipvalue": _positive(clipvalue, "clipvalue"),
                "global_clipnorm": _positive(global_clipnorm, "global_clipnorm")}
        if clip["clipnorm"] is not None and clip["global_clipnorm"] is not None:
            raise ValueError("clipnorm, global_clipnorm: give at most one of them")
        if isinstance(spec, optimizers_mod.Optimizer) and spec.clips and \
                any(v is not None for v in clip.values()):
            raise ValueError("clipnorm, clipvalue, global_clipnorm: the optimizer clips the "
                             "gradients already; give the clipping to compile() or to the "
                             "optimizer, not both")
        self._heads, self.clip = heads, clip
        self._optimizer_spec, self.optimizer = spec, None
        self.optimizer_name = optimizer if isinstance(optimizer, str) else None
        self._compiled()

    def _compiled(self):
        """Hook after compile: bind the optimizer when the model is built."""
        self._ensure_optimizer()

    def _ensure_optimizer(self):
        params = self.parameters()
        if self.optimizer is not None and \
                {id(p) for g in self.optimizer.param_groups for p in g["params"]} == \
                {id(p) for p in params}:
            return
        if not params:
            raise ValueError(f"{type(self).__name__}: the model has no parameters to train")
        self.optimizer = optimizers_mod.create(self._optimizer_spec, params)

    def _require_compiled(self):
        if not self._heads:
            raise RuntimeError("You must compile your model before training/testing. Use "
                               "model.compile(optimizer, loss).")

    def fit(self, x=None, y=None, batch_size=None, epochs=1, verbose="auto", callbacks=None,
            validation_split=0.0, validation_data=None, shuffle=True, initial_epoch=0,
            sample_weight=None):
        """Train for ``epochs`` passes over ``(x, y)`` in batches of ``batch_size`` (32);
        returns a History (a dict of per-epoch lists: ``loss``, metrics, ``val_*``).
        ``verbose``: 0 silent, 1 (``"auto"``) a progress bar on a terminal and a line per
        epoch, 2 a line per epoch. Ctrl-C stops after the current batch, keeping the weights
        (a second Ctrl-C interrupts at once).

        ``sample_weight``: Keras' per-sample weights, shape ``(N,)``, or ``(N, T)`` per step
        for a model with one output per step (a padded many-to-many model: 0 on the padded
        steps); ``validation_data`` may then be ``(x_val, y_val, sample_weight_val)``, and
        ``validation_split`` splits the weights too. A padding mask that reaches the output
        (``Embedding(mask_zero=True)``) is applied without them. With several inputs or
        outputs, ``x``, ``y`` and ``sample_weight`` are lists (in the model's order) or dicts
        by input / output name."""
        self._require_compiled()
        return fit(self, x, y, batch_size, epochs, verbose, callbacks, validation_split,
                   validation_data, shuffle, initial_epoch, sample_weight)

    def evaluate(self, x=None, y=None, batch_size=None, verbose="auto", return_dict=False,
                 sample_weight=None):
        """The loss (and metrics) over ``(x, y)``: a float without metrics, else
        ``[loss, metric, ...]`` (a dict with ``return_dict``); ``sample_weight`` as in
        ``fit``."""
        self._require_compiled()
        return evaluate(self, x, y, batch_size, verbose, return_dict, sample_weight)

    def predict(self, x, batch_size=None, verbose=0):
        """The model's outputs for ``x``, in inference mode, in batches of ``batch_size``
        (a list of arrays for a model with several outputs)."""
        return predict(self, x, batch_size, verbose)

    # weights ------------------------------------------------------------------------------
    def count_params(self):
        return int(sum(p.size for p in self.parameters()))

    @property
    def trainable(self):
        """Keras' ``trainable``: False when every weight is frozen; setting it freezes or
        unfreezes them all (``requires_grad_``), e.g. a nested model kept fixed inside another
        (``fit`` then leaves its weights as they are; not saved, as ``requires_grad`` is not)."""
        return any(p.requires_grad for p in self.parameters())

    @trainable.setter
    def trainable(self, value):
        self.requires_grad_(bool(value))

    def get_weights(self):
        """Copies of every parameter array, in ``parameters()`` order (Keras)."""
        return [p.data.copy() for p in self.parameters()]

    def set_weights(self, weights):
        """Set every parameter from a list like ``get_weights()``'s."""
        params = self.parameters()
        weights = list(weights)
        if len(weights) != len(params):
            raise ValueError(f"weights: expected {len(params)} arrays, got {len(weights)}")
        arrays = [np.asarray(w) for w in weights]
        for i, (p, w) in enumerate(zip(params, arrays)):
            if w.shape != p.shape:
                raise ValueError(f"weights[{i}]: expected shape {p.shape}, got {w.shape}")
        for p, w in zip(params, arrays):
            p.data[...] = w

    # saving -------------------------------------------------------------------------------
    def save(self, path):
        """Write the model (layers' configuration as JSON, weights, compile settings and the
        optimiser's state, random generators' states) to ``path``, exactly there (any suffix)
        and atomically; no pickled code. ``load_model(path)`` gives back the same model, bit
        for bit. Returns the path."""
        return saving.save_model(self, path)

    @classmethod
    def load(cls, path):
        """A model saved by ``save``."""
        model = saving.load_model(path)
        if not isinstance(model, cls):
            raise ValueError(f"path: {path} holds a {type(model).__name__}, not a {cls.__name__}")
        return model

    def save_weights(self, path):
        """Write only the parameters (``state_dict``) to ``path`` (exactly there, atomically;
        NumPy's ``.npz`` layout)."""
        return saving.save_weights(self, path)

    def load_weights(self, path):
        """Load parameters written by ``save_weights`` (the model must have the same layers);
        the file is checked as ``load_model`` checks one."""
        saving.load_weights(self, path)

    def print_table(self, rows, line_length, print_fn, columns):
        """Keras' summary table: ``rows`` of fields under ``columns`` (fractions of the
        width), then the parameter counts."""
        print_fn = print if print_fn is None else print_fn
        cols = [int(line_length * c) for c in columns[1]] + [line_length]

        def row(fields):
            line = ""
            for k, (field, end) in enumerate(zip(fields, cols)):
                line += " " + str(field)
                if k < len(fields) - 1:  # the last column is never cut
                    line = line[:end - 1].ljust(end)
            return line.rstrip()

        print_fn(f'Model: "{self.name}"')
        print_fn("_" * line_length)
        print_fn(row(columns[0]))
        print_fn("=" * line_length)
        for i, fields in enumerate(rows):
            print_fn(row(fields))
            print_fn("=" * line_length if i == len(rows) - 1 else "")
        params = self.parameters()
        trainable = sum(p.size for p in params if p.requires_grad)
        total = sum(p.size for p in params)
        print_fn(f"Total params: {total:,}")
        print_fn(f"Trainable params: {trainable:,}")
        print_fn(f"Non-trainable params: {total - trainable:,}")
        print_fn("_" * line_length)
