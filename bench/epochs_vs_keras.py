"""Time per epoch of the Reuters and IMDB examples' models: rnnfast against Keras 3 itself on its
torch backend (the framework the study notes' code was written for).

For ``reuters_topics`` and ``imdb_sentiment`` it takes the example's data (its ``load_data``,
default sizes) and compiled model (``build_model``), and builds the same model in Keras
(``Embedding``, ``Dropout``, ``Conv1D``, ``MaxPooling1D``, ``LSTM``, ``Dense``,
``Activation``) with the rnnfast model's initial weights (its layers' ``get_weights()``, Keras'
layout; checked: the same outputs before training), compiled with Keras' ``Adam`` with the same
learning rate and epsilon, the example's ``clipnorm``, the same loss and metric. Both train
with the same batch size and shuffling for ``--epochs`` epochs, interleaved (an rnnfast epoch,
then a Keras epoch, ...) so that a busy machine slows both alike, with the same thread count
(``rnnfast.set_num_threads`` and ``torch.set_num_threads``, default 2).

An epoch's time runs from its start to the end of its last training batch (no validation);
each side's process CPU seconds over the same span are printed too (every thread's: robust
on a busy machine, but PyTorch's OpenMP threads also count the time they spin waiting).
The table gives the mean over the epochs after the first (Keras' first epoch carries its
one-time set-up; with one epoch, that one), the ratio ``keras / rnnfast`` (above 1: rnnfast
is faster) and each side's loss of its last epoch (they start alike and see batches of the
same sizes, not the same batches, so the losses agree only roughly).

    python bench/epochs_vs_keras.py                    # 3 epochs each, 2 threads
    python bench/epochs_vs_keras.py --quick            # small data, 1 epoch (seconds)
    python bench/epochs_vs_keras.py --limit 1000       # 10 batches per epoch (busy machines)
    python bench/epochs_vs_keras.py --examples imdb_sentiment --layers --rounds 7

``--layers`` (instead of the epochs): each Keras layer of the twin timed alone on one training
batch (the example's first; each layer's input is the previous layer's output), forward in
training mode and backward (``torch.autograd.grad`` of its output with a random gradient to its
float input and trainable weights), process CPU ms, minimum of ``--rounds``: Keras' own cost per
phase, to set beside ``epochs_profile.py --layers``.

Needs ``keras>=3`` and ``torch`` (the ``[test]`` extra and ``torch==2.13.0``).
"""
import os
import sys
import time

import numpy as np

import _env
import _epochs

_env.use_inplace_build()
os.environ["KERAS_BACKEND"] = "torch"  # before keras is imported
sys.path.insert(0, str(_env.REPO_ROOT / "examples"))

import keras  # noqa: E402
import torch  # noqa: E402
from _common import EpochTimer  # noqa: E402
from _epochs import steady  # noqa: E402
from epochs_vs_torch import IMDB, Reuters  # noqa: E402
from rnnfast.models import optimizers as rn_optimizers  # noqa: E402

NAMES = ["reuters_topics", "imdb_sentiment"]


def _activation(layer):
    fn = getattr(layer, "activation", None)
    names = {"Softmax": "softmax", "ReLU": "relu", "Tanh": "tanh", "Sigmoid": "sigmoid"}
    return None if fn is None else names[type(fn).__name__]


LOSSES = {"CategoricalCrossentropy": "categorical_crossentropy",
          "BinaryCrossentropy": "binary_crossentropy"}


def keras_layers(rn_model):
    """The Keras twin's layers of an example's Sequential, one per rnnfast layer."""
    out = []
    for layer in rn_model.layers:
        kind = type(layer).__name__
        if kind == "Embedding":
            out.append(keras.layers.Embedding(layer.input_dim, layer.output_dim))
        elif kind == "LSTM":
            out.append(keras.layers.LSTM(layer.units))
        elif kind == "Dense":
            out.append(keras.layers.Dense(layer.units, activation=_activation(layer)))
        elif kind == "Conv1D":
            out.append(keras.layers.Conv1D(layer.filters, layer.kernel_size, strides=layer.stride,
                                           padding=layer.padding,
                                           activation=_activation(layer)))
        elif kind == "MaxPooling1D":
            out.append(keras.layers.MaxPooling1D(layer.pool_size))
        elif kind == "Dropout":
            out.append(keras.layers.Dropout(layer.p))
        elif kind == "Activation":
            out.append(keras.layers.Activation(layer.activation_name))
        else:
            raise TypeError(f"no Keras twin for {kind}")
    return out


def keras_twin(case):
    rn = case.model
    rn.build((None,) + case.x.shape[1:], case.x.dtype)
    kmodel = keras.Sequential([keras.Input(case.x.shape[1:], dtype="int32")] +
                              keras_layers(rn))
    weights = [w for layer in rn.layers if hasattr(layer, "get_weights")
               for w in layer.get_weights()]
    kmodel.set_weights(weights)
    rn._ensure_optimizer()
    opt = rn.optimizer
    if isinstance(opt, rn_optimizers.Adam):
        lr, eps, clipnorm = opt.learning_rate, opt.epsilon, opt.clipnorm
    else:  # compiled by name: rnnfast.optim.Adam with Keras' defaults, compile's clipnorm
        lr, eps, clipnorm = opt.param_groups[0]["lr"], opt.param_groups[0]["eps"], \
            rn.clip["clipnorm"]
    kmodel.compile(optimizer=keras.optimizers.Adam(learning_rate=lr, epsilon=eps,
                                                   clipnorm=clipnorm),
                   loss=LOSSES[type(rn.loss).__name__], metrics=["accuracy"])
    x = case.x[:16]
    error = float(np.abs(rn.predict(x) - keras.ops.convert_to_numpy(kmodel(x))).max())
    if not error <= 1e-4:
        raise AssertionError(f"the Keras twin's outputs differ from rnnfast's by {error:.2e}")
    return kmodel


class CpuEpochTimer(EpochTimer):
    """EpochTimer that also records each epoch's process CPU seconds (every thread's, as
    ``time.process_time``: on a busy machine it leaves out the time spent waiting for a core)
    from its start to the end of its last training batch."""

    def __init__(self):
        super().__init__()
        self.cpu_times = []
        self._cpu_start = self._cpu_last = 0.0

    def on_epoch_begin(self, epoch, logs=None):
        super().on_epoch_begin(epoch, logs)
        self._cpu_start = self._cpu_last = time.process_time()

    def on_train_batch_end(self, batch, logs=None):
        super().on_train_batch_end(batch, logs)
        self._cpu_last = time.process_time()

    def on_epoch_end(self, epoch, logs=None):
        super().on_epoch_end(epoch, logs)
        self.cpu_times.append(self._cpu_last - self._cpu_start)


class KerasHooks(keras.callbacks.Callback):
    """Keras' hooks passed on to an rnnfast callback (the EpochTimer that times rnnfast too)."""

    def __init__(self, target):
        super().__init__()
        self.target = target

    def on_epoch_begin(self, epoch, logs=None):
        self.target.on_epoch_begin(epoch, logs)

    def on_train_batch_end(self, batch, logs=None):
        self.target.on_train_batch_end(batch, logs)

    def on_epoch_end(self, epoch, logs=None):
        self.target.on_epoch_end(epoch, logs)


def run_case(name, epochs, quick, seed, limit=None):
    case = {"reuters_topics": Reuters, "imdb_sentiment": IMDB}[name](__import__(name), quick,
                                                                     seed)
    if limit:  # the first samples only: per-batch costs are unchanged, epochs shorter
        case.x, case.y = case.x[:limit], case.y[:limit]
    kmodel = keras_twin(case)
    timer, ktimer = CpuEpochTimer(), CpuEpochTimer()
    rn_loss = k_loss = None
    for _ in range(epochs):
        rn_loss = case.model.fit(case.x, case.y, batch_size=case.batch_size, epochs=1,
                                 verbose=0, callbacks=[timer])["loss"][-1]
        k_loss = kmodel.fit(case.x, case.y, batch_size=case.batch_size, epochs=1, verbose=0,
                            shuffle=True, callbacks=[KerasHooks(ktimer)]).history["loss"][-1]
    return {"example": name, "samples": len(case.x), "sample_shape": case.x.shape[1:],
            "batch": case.batch_size, "rnnfast_s": steady(timer.times),
            "keras_s": steady(ktimer.times), "rnnfast_loss": rn_loss, "keras_loss": k_loss,
            "rnnfast_epochs": timer.times, "keras_epochs": ktimer.times,
            "rnnfast_cpu_s": steady(timer.cpu_times), "keras_cpu_s": steady(ktimer.cpu_times)}


def keras_layer_table(name, rounds, quick=False, seed=0):
    """Process CPU ms of each Keras twin layer's forward and backward on one training batch,
    minimum over ``rounds``; returns the rows (layer name, forward ms, backward ms)."""
    case = {"reuters_topics": Reuters, "imdb_sentiment": IMDB}[name](__import__(name), quick,
                                                                     seed)
    kmodel = keras_twin(case)
    out = torch.from_numpy(np.ascontiguousarray(case.x[:case.batch_size]).astype(np.int32))
    rows = []
    for layer in kmodel.layers:
        inp = out.detach()
        takes_grad = inp.is_floating_point()
        if takes_grad:
            inp.requires_grad_(True)
        weights = [v.value for v in layer.trainable_variables]
        fwd, bwd = [], []
        for _ in range(rounds):
            start = time.process_time()
            out = layer(inp, training=True)
            fwd.append(time.process_time() - start)
            wrt = ([inp] if takes_grad else []) + weights
            grad = torch.randn_like(out)
            start = time.process_time()
            if wrt:
                torch.autograd.grad(out, wrt, grad)
            bwd.append(time.process_time() - start)
        rows.append((f"{type(layer).__name__}", 1e3 * min(fwd), 1e3 * min(bwd)))
    return rows


def layer_lines(rows):
    lines = ["| Keras layer | forward CPU ms | backward CPU ms |", "|---|---|---|"]
    lines += [f"| {n} | {f:.3f} | {b:.3f} |" for n, f, b in rows]
    lines.append(f"| sum | {sum(r[1] for r in rows):.3f} | {sum(r[2] for r in rows):.3f} |")
    return "\n".join(lines)


def table(rows):
    return _epochs.table(rows, "keras", "Keras")


def main(argv=None):
    parser = _epochs.make_parser(__doc__, NAMES, 3)
    parser.add_argument("--limit", type=int, default=None,
                        help="train on the first LIMIT samples only (shorter epochs)")
    parser.add_argument("--layers", action="store_true",
                        help="each Keras layer's forward and backward on one batch instead")
    parser.add_argument("--rounds", type=int, default=7, help="--layers: timed calls (minimum)")
    args = _epochs.parse(parser, argv)
    keras.utils.set_random_seed(args.seed)
    if args.layers:
        print(_epochs.header(f"Keras {keras.__version__} (torch {torch.__version__} backend): "
                             "each layer on one batch", args, ""), flush=True)
        for name in args.examples:
            print(f"\n{name}:\n" + layer_lines(keras_layer_table(name, args.rounds, args.quick,
                                                                 args.seed)), flush=True)
        return None
    print(_epochs.header(f"Reuters and IMDB models: time per epoch, rnnfast vs Keras "
                         f"{keras.__version__} (torch {torch.__version__} backend)", args,
                         f", the first {args.limit} training samples" if args.limit else ""),
          flush=True)
    rows = []
    for name in args.examples:
        rows.append(run_case(name, args.epochs, args.quick, args.seed, args.limit))
        print(_epochs.progress(rows[-1], "keras", "Keras"), flush=True)
        row = rows[-1]
        print(f"{name}: process CPU s per epoch: rnnfast {row['rnnfast_cpu_s']:.3f}, Keras "
              f"{row['keras_cpu_s']:.3f} (Keras / rnnfast {row['keras_cpu_s'] / row['rnnfast_cpu_s']:.2f})",
              flush=True)
    print()
    print(table(rows))
    print(f"\nload average at the end {_env.load_average()}; Keras / rnnfast above 1: rnnfast "
          "is faster")
    return rows


if __name__ == "__main__":
    main()
