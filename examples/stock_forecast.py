"""Next-day closing price from the last 7 days, the time-series workflow of the study notes:
sliding windows (``build_dataset``), min-max scaling fitted on the training period only, a
chronological train / validation / test split, ``LSTM(10) -> Dense(1)`` with the mean squared
error and Adam (learning rate 0.01), and a plot of the prediction against the truth.

Data
    ``--csv FILE``: a table with a header row, one row per day in time order (``--reverse``
    when the newest row comes first); every numeric column is a feature (a date column is
    ignored) and ``--target`` (default ``Close``, else the last numeric column) is predicted.

    Without ``--csv``: 1000 synthetic trading days with a learnable structure: the close is
    ``800 + 0.05 t + 40 sin(2 pi t / 60) + 15 sin(2 pi t / 17)`` plus AR(1) noise (coefficient
    0.8, innovations of standard deviation 2); open, high, low and volume are derived from it
    (open = previous close plus noise, high / low above / below both, volume following the
    60-day cycle). The cycles make the next close predictable beyond "same as today", which
    the printed persistence baseline measures.

The plot (prediction vs truth on the test days) is written to ``--plot`` (default
``stock_forecast.png``) when matplotlib is installed; otherwise a message says it is skipped.

Usage: ``python examples/stock_forecast.py [--csv FILE] [--epochs N] [--quick]``
(``--quick`` or ``RNNFAST_EXAMPLES_QUICK=1``: a few seconds on a small sample).
"""
import csv

import numpy as np

from _common import fit_and_report, make_parser, parse_args
from rnnfast.models import Sequential
from rnnfast.models.layers import LSTM, Dense
from rnnfast.models.optimizers import Adam
from rnnfast.utils import MinMaxScaler, build_dataset, chronological_split

SEQ_LENGTH = 7


def synthetic_prices(days, rng):
    t = np.arange(days)
    noise = np.zeros(days)
    for i in range(1, days):
        noise[i] = 0.8 * noise[i - 1] + 2.0 * rng.standard_normal()
    close = 800 + 0.05 * t + 40 * np.sin(2 * np.pi * t / 60) + 15 * np.sin(2 * np.pi * t / 17)
    close += noise
    open_ = np.concatenate([[close[0]], close[:-1]]) + rng.standard_normal(days)
    high = np.maximum(open_, close) + np.abs(rng.standard_normal(days)) * 3
    low = np.minimum(open_, close) - np.abs(rng.standard_normal(days)) * 3
    volume = 1.2e6 + 3e5 * np.sin(2 * np.pi * t / 60) + 5e4 * rng.standard_normal(days)
    return ["Open", "High", "Low", "Volume", "Close"], np.stack([open_, high, low, volume, close],
                                                                axis=1)


def read_csv(path, reverse):
    with open(path, newline="", encoding="utf-8") as f:
        rows = list(csv.reader(f))
    if len(rows) < 2:
        raise SystemExit(f"{path}: expected a header row and data rows")
    header, body = rows[0], [r for r in rows[1:] if any(cell.strip() for cell in r)]

    def number(cell):
        try:
            return float(cell.replace(",", ""))
        except ValueError:
            return None
    columns = [j for j in range(len(header))
               if all(j < len(r) and number(r[j]) is not None for r in body)]
    if not columns:
        raise SystemExit(f"{path}: no numeric column")
    data = np.array([[number(r[j]) for j in columns] for r in body])
    return [header[j].strip() for j in columns], data[::-1] if reverse else data


def load_data(csv_path=None, reverse=False, target="Close", days=1000, seed=0, limit=None):
    """The windows of 7 days, scaled to [0, 1] by the training period, split in time order:
    ``splits`` ((x, y) of train, validation and test), and ``info`` (names, target index,
    scaler, source)."""
    if csv_path:
        names, table = read_csv(csv_path, reverse)
        if limit:
            table = table[-limit:]
        source = csv_path
    else:
        names, table = synthetic_prices(days, np.random.default_rng(seed))
        source = f"{days} synthetic trading days"
    lowered = [n.lower() for n in names]
    column = lowered.index(target.lower()) if target.lower() in lowered else len(names) - 1
    # windows first, then a chronological split; the scaler sees the training period only
    windows = len(table) - SEQ_LENGTH
    n_train = windows - int(round(windows * 0.15)) * 2
    scaler = MinMaxScaler().fit(table[:n_train + SEQ_LENGTH])
    x, y = build_dataset(scaler.transform(table), SEQ_LENGTH, target=column)
    splits = chronological_split(x.astype(np.float32), y.astype(np.float32), val=0.15,
                                 test=0.15)
    return splits, {"names": names, "target": column, "scaler": scaler, "source": source}


def build_model(features, hidden=10, seed=0):
    """The notes' model, compiled: LSTM(hidden) -> Dense(1), MSE, Adam(learning_rate=0.01)."""
    model = Sequential([LSTM(hidden, input_shape=(SEQ_LENGTH, features), seed=seed),
                        Dense(1, seed=seed + 1)], seed=seed)
    model.compile(loss="mse", optimizer=Adam(learning_rate=0.01), metrics=["mae"])
    return model


def plot(truth, prediction, title, path):
    """Prediction against truth as a PNG at ``path``; False when matplotlib is missing."""
    try:
        import matplotlib
    except ImportError:
        return False
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure = plt.figure(figsize=(9, 4))
    plt.plot(truth)
    plt.plot(prediction)
    plt.legend(["original", "prediction"])
    plt.title(title)
    figure.savefig(path, dpi=100)
    plt.close(figure)
    return True


def main(argv=None):
    parser = make_parser(__doc__, epochs=60, batch_size=32)
    parser.add_argument("--csv", help="price table with a header row")
    parser.add_argument("--target", default="Close", help="column to predict")
    parser.add_argument("--reverse", action="store_true", help="rows are newest first")
    parser.add_argument("--hidden", type=int, default=10)
    parser.add_argument("--days", type=int, default=1000, help="synthetic days")
    parser.add_argument("--plot", default="stock_forecast.png", help="PNG of the test period")
    args = parse_args(parser, argv, days=300, epochs=3)

    splits, info = load_data(args.csv, args.reverse, args.target, args.days, args.seed,
                             limit=args.days if args.quick else None)
    (x_train, y_train), (x_val, y_val), (x_test, y_test) = splits
    names, target, scaler = info["names"], info["target"], info["scaler"]
    print(f"{info['source']}: features {names}, predicting {names[target]!r} from "
          f"{SEQ_LENGTH} days")
    model = build_model(len(names), args.hidden, args.seed)
    history = fit_and_report(model, x_train, y_train, args, validation_data=(x_val, y_val),
                             test=(x_test, y_test),
                             notes={"loss": "mse of the prices scaled to [0, 1]"})

    def prices(scaled):
        return scaler.inverse_transform(scaled, columns=[target])[:, 0]
    truth = prices(y_test)
    prediction = prices(model.predict(x_test))
    persistence = prices(x_test[:, -1, [target]])
    rmse = np.sqrt(np.mean((prediction - truth) ** 2))
    baseline = np.sqrt(np.mean((persistence - truth) ** 2))
    print(f"test RMSE: {rmse:.3f} (persistence baseline, tomorrow = today: {baseline:.3f})")
    if plot(truth, prediction, f"{names[target]}: test period", args.plot):
        print(f"plot written to {args.plot}")
    else:
        print("matplotlib is not installed: skipping the plot (pip install matplotlib)")
    return history


if __name__ == "__main__":
    main()
