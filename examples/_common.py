"""What the seed examples share: the options each has (``--epochs``, ``--batch-size``,
``--seed``, ``--quick``) and the Keras block that trains and reports::

    model.summary()
    history = model.fit(x, y, batch_size=..., epochs=..., validation_data=..., verbose=2)
    model.evaluate(x_test, y_test)

plus the time per epoch (of the training batches; the validation pass is reported apart).
"""
import argparse
import os
import time

import numpy as np

from rnnfast.models.callbacks import Callback

QUICK_ENV = "RNNFAST_EXAMPLES_QUICK"


def make_parser(doc, epochs, batch_size):
    """An argument parser described by the first paragraph of ``doc``, with the shared options."""
    parser = argparse.ArgumentParser(description=doc.split("\n\n")[0])
    parser.add_argument("--epochs", type=int, default=epochs)
    parser.add_argument("--batch-size", type=int, default=batch_size)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--quick", action="store_true",
                        help=f"a few seconds on a small sample (also {QUICK_ENV}=1)")
    return parser


def parse_args(parser, argv, **quick):
    """The options; in quick mode (``--quick`` or ``RNNFAST_EXAMPLES_QUICK=1``) the values given
    in ``quick`` replace the parsed ones."""
    args = parser.parse_args(argv)
    args.quick = args.quick or os.environ.get(QUICK_ENV) == "1"
    if args.quick:
        for name, value in quick.items():
            setattr(args, name, value)
    return args


class EpochTimer(Callback):
    """Seconds spent on each epoch's training batches (without its validation pass)."""

    def __init__(self):
        super().__init__()
        self.times = []
        self._start = self._last = 0.0

    def on_epoch_begin(self, epoch, logs=None):
        self._start = self._last = time.perf_counter()

    def on_train_batch_end(self, batch, logs=None):
        self._last = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        self.times.append(self._last - self._start)


def fit_and_report(model, x, y, args, validation_data=None, test=None, notes=None):
    """Print the summary, fit with a line per epoch, print the time per epoch and the scores:
    ``model.evaluate`` on ``test`` (``test loss: ...``, ``test <metric>: ...``), or without a
    test set the last epoch's training figures (``final loss: ...``). ``notes`` maps a score's
    name to a remark printed after it. Returns the history."""
    model.summary()
    timer = EpochTimer()
    history = model.fit(x, y, batch_size=args.batch_size, epochs=args.epochs,
                        validation_data=validation_data, verbose=2, callbacks=[timer])
    if timer.times:
        training = float(np.mean(timer.times))
        extra = ""
        if validation_data is not None:
            extra = f" (+{np.mean(history.epoch_times) - training:.3f}s of validation)"
        print(f"time per epoch: {training:.3f}s{extra}")
    if test is not None:
        prefix, scores = "test", model.evaluate(*test, verbose=0, return_dict=True)
    else:
        prefix = "final"
        scores = {k: v[-1] for k, v in history.items() if not k.startswith("val_")}
    notes = notes or {}
    for name, value in scores.items():
        note = f" ({notes[name]})" if name in notes else ""
        print(f"{prefix} {name}: {value:.5g}{note}")
    return history
