"""Next-sample prediction of a waveform with WaveNet, the model the study notes set beside the
LSTM for audio (tens of thousands of steps per second): causal dilated convolutions (dilations
1, 2, ..., 512, twice: a receptive field of 2,048 samples), gated activations, residual and
skip connections. Samples are mu-law companded to 256 classes; the model reads the companded
value of each sample and predicts the class of the next one (softmax over 256, cross-entropy,
Adam). Then it generates new samples one at a time with the fast WaveNet method (a queue of
past inputs per layer: O(layers) work per sample) and plots them against the real signal.

Data
    ``--data FILE``: a waveform or series: ``.wav`` (PCM, 8/16/32-bit, any rate; channels are
    averaged), ``.npy`` (a 1-D signal, or 2-D: one sequence per row) or ``.csv`` (``--column``,
    a name or an index, default the last numeric column; an optional header row). A 1-D signal
    is cut into sequences of ``--length`` samples; the signal is centred and scaled to [-1, 1];
    the last 20% of the sequences are the test set.

    Without ``--data``: 16 synthetic "melodies" of 16,000 samples (one second at 16 kHz): notes
    of 1,000 to 2,000 samples whose pitch is drawn from a pentatonic scale (220-660 Hz, 24 to
    73 samples per period), each a fundamental with two overtones of random strength, an
    attack-decay envelope, plus a little noise. The period makes the next sample predictable
    from the last few dozen; a sample changes by several mu-law classes from one step to the
    next, so "the next sample equals this one" (the persistence baseline) is a poor guess.

Reported: the test cross-entropy and accuracy, against the persistence baseline (its accuracy;
its cross-entropy when the next class is the current one plus a change drawn from the training
set's histogram of changes; the mean absolute error of the decoded prediction for both);
generation speed in samples per second; a PNG (``--plot``, default ``wavenet.png``) of the
first 600 generated samples against the real continuation, when matplotlib is installed.

Usage: ``python examples/wavenet.py [--data FILE] [--epochs N] [--generate N] [--quick]``
(``--quick`` or ``RNNFAST_EXAMPLES_QUICK=1``: a few seconds on a small model and sample).
"""
import csv
import functools
import time
import wave

import numpy as np

from _common import fit_and_report, make_parser, parse_args
from rnnfast import losses, nn, optim
from rnnfast.models import Sequential
from rnnfast.models.layers import Input
from rnnfast.utils import mu_law_decode, mu_law_encode

CLASSES = 256
RATE = 16000
SCALE = [220.0, 247.5, 275.0, 330.0, 366.7, 440.0, 495.0, 550.0, 660.0]  # pentatonic, in Hz


def synthetic_melodies(sequences, length, rng):
    """``(sequences, length)`` signals in [-1, 1]: notes with overtones and envelopes."""
    out = np.zeros((sequences, length))
    for s in range(sequences):
        t0 = 0
        while t0 < length:
            n = int(rng.integers(1000, 2001))
            t = np.arange(n)
            f0 = rng.choice(SCALE) / RATE
            phase = rng.uniform(0, 2 * np.pi)
            amps = [1.0, rng.uniform(0.2, 0.6), rng.uniform(0.0, 0.3)]
            note = sum(a * np.sin(2 * np.pi * f0 * (h + 1) * t + (h + 1) * phase)
                       for h, a in enumerate(amps))
            envelope = np.minimum(t / 80.0, 1.0) * np.exp(-t / rng.uniform(2000, 5000))
            seg = note * envelope * rng.uniform(0.4, 0.55)
            out[s, t0:t0 + n] = seg[:length - t0]
            t0 += n
    out += 0.001 * rng.standard_normal(out.shape)
    return np.clip(out, -1, 1)


def read_wav(path):
    with wave.open(str(path), "rb") as f:
        channels, width, rate = f.getnchannels(), f.getsampwidth(), f.getframerate()
        raw = f.readframes(f.getnframes())
    if width == 1:
        data = np.frombuffer(raw, np.uint8).astype(np.float64) - 128
    elif width in (2, 4):
        data = np.frombuffer(raw, "<i2" if width == 2 else "<i4").astype(np.float64)
    else:
        raise SystemExit(f"{path}: {8 * width}-bit samples are not supported (8, 16 or 32)")
    return data.reshape(-1, channels).mean(axis=1), f"{rate} Hz, {channels} channel(s)"


def read_csv(path, column):
    with open(path, newline="", encoding="utf-8") as f:
        rows = [r for r in csv.reader(f) if any(cell.strip() for cell in r)]

    def number(cell):
        try:
            return float(cell)
        except ValueError:
            return None
    header = rows[0] if rows and any(number(c) is None for c in rows[0]) else None
    body = rows[1:] if header else rows
    numeric = [j for j in range(len(body[0])) if all(j < len(r) and number(r[j]) is not None
                                                     for r in body)] if body else []
    if not numeric:
        raise SystemExit(f"{path}: no numeric column")
    if column is None:
        j = numeric[-1]
    elif header and column in header:
        j = header.index(column)
    else:
        try:
            j = int(column)
        except ValueError:
            raise SystemExit(f"--column {column!r}: not a column of {path}") from None
    if j not in numeric:
        raise SystemExit(f"--column {column!r}: not a numeric column of {path}")
    return np.array([number(r[j]) for r in body]), f"column {header[j] if header else j}"


def load_data(path=None, column=None, length=16000, sequences=16, seed=0):
    """``(train, test, source)``: mu-law class ids ``(sequences, length)`` and a description."""
    if path:
        suffix = str(path).lower().rsplit(".", 1)[-1]
        if suffix == "wav":
            signal, what = read_wav(path)
        elif suffix == "npy":
            signal, what = np.asarray(np.load(path), dtype=np.float64), "array"
        elif suffix == "csv":
            signal, what = read_csv(path, column)
        else:
            raise SystemExit(f"{path}: expected a .wav, .npy or .csv file")
        if signal.ndim == 1:
            length = min(length, len(signal) // 5)
            if length < 64:
                raise SystemExit(f"{path}: {len(signal)} samples are too few (at least 320)")
            signal = signal[:len(signal) // length * length].reshape(-1, length)
        elif signal.ndim != 2 or signal.shape[0] < 2:
            raise SystemExit(f"{path}: expected a 1-D signal or a 2-D array of >= 2 sequences")
        signal = signal - signal.mean()
        signal = signal / max(np.abs(signal).max(), 1e-12)
        source = f"{path} ({what})"
    else:
        signal = synthetic_melodies(sequences, length, np.random.default_rng(seed))
        source = f"{sequences} synthetic melodies"
    ids = mu_law_encode(signal, CLASSES)
    n_test = max(1, int(round(len(ids) * 0.2)))
    return ids[:-n_test], ids[-n_test:], source


def inputs_of(ids):
    """The model's input of class ids: the companded value ``2 k / 255 - 1``, one channel."""
    return (2.0 * ids / (CLASSES - 1) - 1.0).astype(np.float32)[..., None]


def build_model(dilations, channels, seed=0, lr=3e-3):
    wavenet = nn.WaveNet(1, CLASSES, residual_channels=channels, dilation_channels=channels,
                         skip_channels=2 * channels, end_channels=2 * channels,
                         dilations=dilations, seed=seed)
    model = Sequential([Input((None, 1)), wavenet], seed=seed)
    model.compile(loss=losses.SparseCategoricalCrossentropy(from_logits=True),
                  optimizer=functools.partial(optim.Adam, lr=lr), metrics=["accuracy"])
    return model, wavenet


def generate(wavenet, prompt, steps, seed=0, temperature=1.0):
    """Class ids of ``steps`` samples after the ``prompt`` ids ``(batch, T0)``, sampled one at a
    time with the fast generator; and the samples per second."""
    rng = np.random.default_rng(seed)
    gen = wavenet.generator(prompt.shape[0])
    logits = gen.prime(inputs_of(prompt))
    out = np.zeros((prompt.shape[0], steps), np.int64)
    start = time.perf_counter()
    for t in range(steps):
        z = logits / temperature
        p = np.exp(z - z.max(axis=1, keepdims=True))
        p /= p.sum(axis=1, keepdims=True)
        u = rng.random((len(p), 1))
        out[:, t] = np.minimum((p.cumsum(axis=1) < u).sum(axis=1), CLASSES - 1)
        logits = gen.step(inputs_of(out[:, t:t + 1])[:, 0])
    rate = steps * prompt.shape[0] / (time.perf_counter() - start)
    return out, rate


def plot(real, generated, prompt, title, path):
    """The real signal and the generated continuation as a PNG; False without matplotlib."""
    try:
        import matplotlib
    except ImportError:
        return False
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure = plt.figure(figsize=(9, 4))
    t0 = np.arange(-len(prompt), 0)
    t1 = np.arange(len(real))
    plt.plot(t0, prompt, color="gray", linewidth=0.8)
    plt.plot(t1, real, linewidth=0.8)
    plt.plot(t1, generated, linewidth=0.8)
    plt.axvline(0, color="black", linewidth=0.5)
    plt.legend(["prompt", "real continuation", "generated"], loc="upper right")
    plt.xlabel("sample")
    plt.title(title)
    figure.savefig(path, dpi=100)
    plt.close(figure)
    return True


def main(argv=None):
    parser = make_parser(__doc__, epochs=16, batch_size=1)
    parser.add_argument("--data", help="a .wav, .npy or .csv waveform or series")
    parser.add_argument("--column", help="the .csv column (name or index)")
    parser.add_argument("--length", type=int, default=16000, help="samples per sequence")
    parser.add_argument("--sequences", type=int, default=16, help="synthetic sequences")
    parser.add_argument("--channels", type=int, default=32, help="residual channels")
    parser.add_argument("--stacks", type=int, default=2, help="stacks of dilations 1..512")
    parser.add_argument("--max-dilation", type=int, default=512)
    parser.add_argument("--generate", type=int, default=3000, help="samples to generate")
    parser.add_argument("--plot", default="wavenet.png", help="PNG of the generated signal")
    args = parse_args(parser, argv, sequences=4, epochs=2, channels=16, stacks=1,
                      max_dilation=128, generate=300)

    train, test, source = load_data(args.data, args.column, args.length, args.sequences,
                                    args.seed)
    dilations = [2 ** i for i in range(int(np.log2(args.max_dilation)) + 1)] * args.stacks
    model, wavenet = build_model(dilations, args.channels, args.seed)
    print(f"{source}: {len(train)} training and {len(test)} test sequences of "
          f"{train.shape[1]} samples, {CLASSES} mu-law classes; receptive field "
          f"{wavenet.receptive_field} samples")
    x_train, y_train = inputs_of(train[:, :-1]), train[:, 1:]
    x_test, y_test = inputs_of(test[:, :-1]), test[:, 1:]
    history = fit_and_report(model, x_train, y_train, args, test=(x_test, y_test),
                             notes={"loss": "cross-entropy per sample, nats"})
    scores = model.evaluate(x_test, y_test, verbose=0, return_dict=True)

    # the persistence baseline: the next sample is this one; as a distribution (for a loss),
    # this class plus a change drawn from the training set's histogram of class changes
    persistence = test[:, :-1]
    changes = np.bincount((train[:, 1:] - train[:, :-1]).ravel() + CLASSES - 1,
                          minlength=2 * CLASSES - 1) + 0.5
    changes = changes / changes.sum()
    baseline_loss = -np.mean(np.log(changes[(y_test - persistence).ravel() + CLASSES - 1]))
    predicted = np.concatenate([model.predict(x_test[i:i + 1], verbose=0).argmax(-1)
                                for i in range(len(x_test))])
    truth = mu_law_decode(y_test)
    mae = np.mean(np.abs(mu_law_decode(predicted) - truth))
    mae_persistence = np.mean(np.abs(mu_law_decode(persistence) - truth))
    print(f"test loss: model {scores['loss']:.4f}, persistence baseline {baseline_loss:.4f} "
          "(cross-entropy, nats; the baseline's distribution: the training set's class changes)")
    print(f"next-sample accuracy: model {np.mean(predicted == y_test):.4f}, persistence baseline "
          f"{np.mean(persistence == y_test):.4f}")
    print(f"mean absolute error (decoded): model {mae:.5f}, persistence baseline "
          f"{mae_persistence:.5f}")

    prompt_len = min(wavenet.receptive_field, test.shape[1] // 2)
    steps = min(args.generate, test.shape[1] - prompt_len)
    prompt = test[:1, :prompt_len]
    generated, rate = generate(wavenet, prompt, steps, seed=args.seed)
    print(f"generated {steps} samples after a prompt of {prompt_len}: {rate:.0f} samples/s "
          f"(fast WaveNet queues, {len(dilations)} layers)")
    shown = min(600, steps)            # the first samples of the continuation, readable
    real = mu_law_decode(test[0, prompt_len:prompt_len + shown])
    if plot(real, mu_law_decode(generated[0, :shown]), mu_law_decode(prompt[0, -200:]),
            "WaveNet: generated vs real continuation", args.plot):
        print(f"plot written to {args.plot}")
    else:
        print("matplotlib is not installed: skipping the plot (pip install matplotlib)")
    return history


if __name__ == "__main__":
    main()
