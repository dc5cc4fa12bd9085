"""Time per epoch of the seed examples' models: rnnfast against the same model in PyTorch CPU.

For each of the four seed examples of ``examples/`` (``reuters_topics``, ``imdb_sentiment``,
``stock_forecast``, ``char_rnn``; ``translate`` and ``wavenet``, below) it takes the example's data (its
``load_data``, default sizes)
and model (its ``build_model``: a compiled ``Sequential``), and writes the same model in plain
PyTorch (``torch.nn.Embedding``, ``LSTM``, ``Conv1d``, ``MaxPool1d``, ``Dropout``, ``Linear``),
starting from the same weights, with the same optimiser and settings (Adam with the
example's learning rate and epsilon), the same gradient clipping (Keras' ``clipnorm``: each
gradient's norm), the same loss (PyTorch's fused form on logits), batch size and per-epoch
shuffling (the very order ``fit`` draws), and per-batch loss and metric bookkeeping as ``fit``
does. Both train for
``--epochs`` epochs, interleaved (an rnnfast epoch, then a PyTorch epoch, ...) so that a busy
machine slows both alike, with the same thread count (``rnnfast.set_num_threads`` and
``torch.set_num_threads``, default 2).

An epoch's time covers its training batches (data indexing, forward, loss, backward, clipping,
optimiser step, metrics), not the evaluation after it. The table gives the mean over the
epochs after the first (which carries one-time costs on both sides; with one epoch, that one;
every epoch's time is printed above the table), the ratio ``torch / rnnfast`` (above 1:
rnnfast is faster), each side's loss of its last epoch, and its metric on the example's test
set after training (accuracy, or the MAE of the scaled prices; char_rnn has no test set: its
last epoch's training accuracy). The two start from the same weights (checked: the same
outputs before training) and see the same batches, so their losses agree up to float32
rounding, which grows over the steps (and the IMDB model's dropout masks differ); in float64
they agree to 1e-12 (``tests/test_bench_epochs.py``).

    python bench/epochs_vs_torch.py                    # 2 epochs each, 2 threads (~2-3 min)
    python bench/epochs_vs_torch.py --quick            # small data, 1 epoch (seconds)
    python bench/epochs_vs_torch.py --examples imdb_sentiment char_rnn --epochs 3

``translate``: the example's ``nn.Seq2Seq`` trained by its own loop (``train_epoch``), against
``TorchSeq2Seq`` (the same math: packed bidirectional LSTM, bridge, LSTM decoder, masked
attention, output layer) from the same weights, on the same batches, with Adam, the joint
gradient norm clipped to 5 and cross-entropy over the real target tokens; its metric is the
last epoch's training token accuracy.

``wavenet``: the example's Sequential holding an ``nn.WaveNet`` (default: 13 training sequences
of 15,999 steps, 20 layers, batch 1) trained by ``fit``, against ``TorchWaveNet``
(``wavenet_vs_torch.py``: the same causal dilated convolutions, gates, residual and skip sums
and head) from the same weights, with Adam and cross-entropy over every step; its metric is the
test accuracy of the next sample's class. After the table, WaveNet generation: samples per
second of ``nn.WaveNetGenerator`` against the PyTorch loop recomputing the receptive field
(``--generate`` samples).

Needs ``torch==2.13.0`` (the ``[bench]`` extra). A busy machine (see the load average in the
header) stretches every time.
"""
import copy
import math
import sys
import time

import numpy as np

import _env
import _epochs

_env.use_inplace_build()
EXAMPLES_DIR = _env.REPO_ROOT / "examples"
sys.path.insert(0, str(EXAMPLES_DIR))

import rnnfast  # noqa: E402
import torch  # noqa: E402
from _common import EpochTimer  # noqa: E402
from _epochs import steady  # noqa: E402
from rnnfast import optim as rn_optim  # noqa: E402
from rnnfast.models import optimizers as rn_keras_optimizers  # noqa: E402
from wavenet_vs_torch import TorchWaveNet, generation_report  # noqa: E402

NAMES = ["reuters_topics", "imdb_sentiment", "stock_forecast", "char_rnn", "translate", "wavenet"]


# PyTorch twins of the examples' models ----------------------------------------------------------
class LastStepClassifier(torch.nn.Module):
    """Embedding -> LSTM (last state) -> Linear logits: the Reuters and Char-RNN models."""

    def __init__(self, vocab, embedding_dim, hidden, outputs):
        super().__init__()
        self.embedding = torch.nn.Embedding(vocab, embedding_dim)
        self.lstm = torch.nn.LSTM(embedding_dim, hidden, batch_first=True)
        self.dense = torch.nn.Linear(hidden, outputs)

    def forward(self, x):
        _, (h_n, _) = self.lstm(self.embedding(x))
        return self.dense(h_n[-1])


class ConvLSTMClassifier(torch.nn.Module):
    """Embedding -> Dropout -> Conv1d + ReLU -> MaxPool1d -> LSTM -> Linear logit (IMDB)."""

    def __init__(self, vocab, embedding_dim, filters, kernel, pool, hidden, dropout):
        super().__init__()
        self.embedding = torch.nn.Embedding(vocab, embedding_dim)
        self.dropout = torch.nn.Dropout(dropout)
        self.conv = torch.nn.Conv1d(embedding_dim, filters, kernel)
        self.pool = torch.nn.MaxPool1d(pool)
        self.lstm = torch.nn.LSTM(filters, hidden, batch_first=True)
        self.dense = torch.nn.Linear(hidden, 1)

    def forward(self, x):
        e = self.dropout(self.embedding(x)).transpose(1, 2)  # channels first for Conv1d
        c = self.pool(torch.relu(self.conv(e))).transpose(1, 2)
        _, (h_n, _) = self.lstm(c)
        return self.dense(h_n[-1])[:, 0]


class Forecaster(torch.nn.Module):
    """LSTM (last state) -> Linear: the stock model."""

    def __init__(self, features, hidden):
        super().__init__()
        self.lstm = torch.nn.LSTM(features, hidden, batch_first=True)
        self.dense = torch.nn.Linear(hidden, 1)

    def forward(self, x):
        _, (h_n, _) = self.lstm(x)
        return self.dense(h_n[-1])


class TorchSeq2Seq(torch.nn.Module):
    """``rnnfast.nn.Seq2Seq`` in PyTorch (the same parameter names), with its weights."""

    def __init__(self, model):
        super().__init__()
        tnn = torch.nn
        H, L, E = model.hidden_size, model.num_layers, model.embedding_dim
        self.attention, self.H, self.L = model.attention, H, L
        self.src_embedding = tnn.Embedding(model.src_vocab, E, padding_idx=0)
        self.tgt_embedding = tnn.Embedding(model.tgt_vocab, E, padding_idx=0)
        self.encoder = tnn.LSTM(E, H, L, batch_first=True, bidirectional=True)
        self.bridge_h = tnn.Linear(2 * H, H)
        self.bridge_c = tnn.Linear(2 * H, H)
        self.decoder = tnn.LSTM(E, H, L, batch_first=True)
        if model.attention == "dot":
            self.key_proj = tnn.Linear(2 * H, H, bias=False)
        else:
            A = model.attention_dim
            self.key_proj = tnn.Linear(2 * H, A)
            self.query_proj = tnn.Linear(H, A, bias=False)
            self.v = tnn.Parameter(torch.zeros(A))
        self.combine = tnn.Linear(3 * H, H)
        self.output = tnn.Linear(H, model.tgt_vocab)
        if model.dtype == np.float64:
            self.double()
        _copy(self, model.state_dict())

    def forward(self, src, tgt):
        """Logits ``(B, T, tgt_vocab)`` and attention weights ``(B, T, S)``."""
        tnn = torch.nn
        (B, S), H, L = src.shape, self.H, self.L
        lengths = (src != 0).sum(1)
        packed = tnn.utils.rnn.pack_padded_sequence(self.src_embedding(src), lengths,
                                                    batch_first=True, enforce_sorted=False)
        out, (h_n, c_n) = self.encoder(packed)
        enc, _ = tnn.utils.rnn.pad_packed_sequence(out, batch_first=True, total_length=S)

        def bridge(s):
            return s.view(L, 2, B, H).permute(0, 2, 1, 3).reshape(L, B, 2 * H)
        h0 = torch.tanh(self.bridge_h(bridge(h_n)))
        c0 = self.bridge_c(bridge(c_n))
        dec, _ = self.decoder(self.tgt_embedding(tgt), (h0.contiguous(), c0.contiguous()))
        keys = self.key_proj(enc)
        if self.attention == "dot":
            scores = dec @ keys.transpose(1, 2)
        else:
            q = self.query_proj(dec)
            scores = (torch.tanh(q[:, :, None, :] + keys[:, None, :, :]) * self.v).sum(-1)
        mask = torch.arange(S)[None, :] < lengths[:, None]
        weights = torch.softmax(scores.masked_fill(~mask[:, None, :], float("-inf")), dim=-1)
        att = torch.tanh(self.combine(torch.cat([weights @ enc, dec], dim=-1)))
        return self.output(att), weights


def _copy(torch_module, arrays):
    """Load rnnfast arrays (PyTorch's names and layouts) into a torch module."""
    torch_module.load_state_dict({k: torch.from_numpy(np.array(v)) for k, v in arrays.items()})


def copy_weights(rn_model, tmodel):
    """The rnnfast model's initial weights into its PyTorch twin, layer by layer."""
    targets = {"embedding": getattr(tmodel, "embedding", None), "lstm": tmodel.lstm,
               "dense": tmodel.dense, "conv1d": getattr(tmodel, "conv", None)}
    for name, layer in zip(rn_model.layer_names, rn_model.layers):
        if not layer.parameters():
            continue
        arrays = (layer.rnn if name == "lstm" else layer).state_dict()
        if name == "lstm" and "bias_ih_l0" in arrays and "bias_hh_l0" not in arrays:
            # Keras' single LSTM bias: the twin's second bias stays zero and frozen
            arrays["bias_hh_l0"] = np.zeros_like(arrays["bias_ih_l0"])
            targets[name].bias_hh_l0.requires_grad_(False)
        _copy(targets[name], arrays)


# the four cases ---------------------------------------------------------------------------------
class Case:
    """One example: its data, its rnnfast model, its PyTorch twin and how to score them."""

    metric = "accuracy"
    twin_has_weights = False    # made from the rnnfast model (else copy_weights fills it)

    def __init__(self, module, quick, seed):
        self.module = module
        self.seed = seed
        self.load(quick)

    def tensors(self, x, y):
        return torch.from_numpy(np.ascontiguousarray(x)), torch.from_numpy(np.ascontiguousarray(y))

    def torch_loss(self, out, y):
        return torch.nn.functional.cross_entropy(out, y)

    def torch_metric(self, out, y):
        return (out.argmax(dim=1) == y).float()

    def torch_predict(self, out):
        """What the rnnfast model outputs (its last activation) from the twin's logits."""
        return torch.softmax(out, dim=1)


class Reuters(Case):
    def load(self, quick):
        (self.x, self.y), (self.xt, self.yt), self.categories, _ = self.module.load_data(
            samples=200 if quick else 5000, seed=self.seed)
        self.model = self.module.build_model(self.categories, seed=self.seed)
        self.twin = LastStepClassifier(self.module.NUM_WORDS, 100, 100, self.categories)
        self.batch_size = 100

    def tensors(self, x, y):  # one-hot labels: PyTorch takes class indices
        return torch.from_numpy(x.astype(np.int64)), torch.from_numpy(y.argmax(axis=1))


class IMDB(Case):
    def load(self, quick):
        (self.x, self.y), (self.xt, self.yt), _ = self.module.load_data(
            samples=200 if quick else 8000, seed=self.seed)
        self.model = self.module.build_model(self.seed)
        self.twin = ConvLSTMClassifier(self.module.NUM_WORDS, 100, 64, 5, 4, 55, 0.5)
        self.batch_size = 100

    def tensors(self, x, y):
        return torch.from_numpy(x.astype(np.int64)), torch.from_numpy(y.astype(np.float32))

    def torch_loss(self, out, y):
        return torch.nn.functional.binary_cross_entropy_with_logits(out, y)

    def torch_metric(self, out, y):
        return ((out > 0) == (y > 0.5)).float()

    def torch_predict(self, out):
        return torch.sigmoid(out)[:, None]


class Stock(Case):
    metric = "mae"

    def load(self, quick):
        splits, info = self.module.load_data(days=300 if quick else 1000, seed=self.seed)
        (self.x, self.y), _, (self.xt, self.yt) = splits
        features = len(info["names"])
        self.model = self.module.build_model(features, seed=self.seed)
        self.twin = Forecaster(features, 10)
        self.batch_size = 32

    def torch_loss(self, out, y):
        return torch.nn.functional.mse_loss(out, y)

    def torch_metric(self, out, y):
        return (out - y).abs()[:, 0]

    def torch_predict(self, out):
        return out


class CharRNN(Case):
    def load(self, quick):
        (self.x, self.y), tokenizer, _, _ = self.module.load_data(
            sentences=20 if quick else 400, seed=self.seed)
        vocab = len(tokenizer.word_index) + 1
        self.xt = self.yt = None
        self.model = self.module.build_model(vocab, 32, seed=self.seed)
        self.twin = LastStepClassifier(vocab, 32, 128, vocab)
        self.batch_size = 128

    def tensors(self, x, y):
        return torch.from_numpy(x.astype(np.int64)), torch.from_numpy(y.astype(np.int64))


class WaveNetCase(Case):
    """The WaveNet example: its Sequential holding an ``nn.WaveNet`` (mu-law classes of the
    next sample, sparse cross-entropy on logits, Adam), its default data and batch size."""

    check_samples = 2           # sequences of 16,000 steps: two are enough for the check
    twin_has_weights = True

    def load(self, quick):
        example = self.module
        if quick:   # the example's --quick sizes
            sequences, length, channels, dilations = 4, 1000, 16, [2 ** i for i in range(8)]
        else:
            sequences, length, channels, dilations = 16, 16000, 32, [2 ** i for i in range(10)] * 2
        train, test, _ = example.load_data(None, None, length, sequences, self.seed)
        self.x, self.y = example.inputs_of(train[:, :-1]), train[:, 1:]
        self.xt, self.yt = example.inputs_of(test[:, :-1]), test[:, 1:]
        self.model, self.wavenet = example.build_model(dilations, channels, seed=self.seed)
        self.twin = TorchWaveNet(self.wavenet)
        self.batch_size = 1

    def tensors(self, x, y):
        return torch.from_numpy(x), torch.from_numpy(y.astype(np.int64))

    def torch_loss(self, out, y):
        return torch.nn.functional.cross_entropy(out.reshape(-1, out.shape[-1]), y.reshape(-1))

    def torch_metric(self, out, y):
        return (out.argmax(dim=-1) == y).float().mean(dim=1)

    def torch_predict(self, out):
        return out


CASES = {"reuters_topics": Reuters, "imdb_sentiment": IMDB, "stock_forecast": Stock,
         "char_rnn": CharRNN, "wavenet": WaveNetCase}


# training -----------------------------------------------------------------------------------------
class KerasAdam(torch.optim.Optimizer):
    """Keras' Adam update (rnnfast.models.optimizers.Adam: epsilon added to sqrt(v) before the
    bias correction) for the PyTorch twin of a model compiled with it."""

    def __init__(self, params, lr, beta_1, beta_2, epsilon):
        super().__init__(params, dict(lr=lr, beta_1=beta_1, beta_2=beta_2, epsilon=epsilon))
        self.iterations = 0

    @torch.no_grad()
    def step(self):
        t = self.iterations + 1
        for g in self.param_groups:
            b1, b2 = g["beta_1"], g["beta_2"]
            alpha = g["lr"] * math.sqrt(1 - b2 ** t) / (1 - b1 ** t)
            for p in g["params"]:
                if p.grad is None:
                    continue
                state = self.state[p]
                if not state:
                    state["m"], state["v"] = torch.zeros_like(p), torch.zeros_like(p)
                state["m"].mul_(b1).add_(p.grad, alpha=1 - b1)
                state["v"].mul_(b2).addcmul_(p.grad, p.grad, value=1 - b2)
                p.sub_(alpha * state["m"] / (state["v"].sqrt() + g["epsilon"]))
        self.iterations += 1


def torch_optimizer(rn_model, tmodel):
    """The rnnfast model's Adam (its learning rate, betas, epsilon) for the PyTorch twin: torch's
    for rnnfast.optim's (PyTorch's rule), KerasAdam for Keras' (rnnfast.models.optimizers)."""
    rn_model._ensure_optimizer()
    opt = rn_model.optimizer
    if type(opt) is rn_keras_optimizers.Adam and not opt.amsgrad and \
            opt.weight_decay is None and opt.clipvalue is None and opt.global_clipnorm is None:
        return KerasAdam(tmodel.parameters(), opt.learning_rate, opt.beta_1, opt.beta_2,
                         opt.epsilon)
    if type(opt) is not rn_optim.Adam:
        raise TypeError(f"expected the examples to train with Adam, got {opt!r}")
    g = opt.param_groups[0]
    return torch.optim.Adam(tmodel.parameters(), lr=g["lr"], betas=g["betas"], eps=g["eps"])


def clip_norm_of(rn_model):
    """Keras' clipnorm of the model: compile's, or its Keras optimiser's."""
    return rn_model.clip["clipnorm"] or getattr(rn_model.optimizer, "clipnorm", None)


def check_twin(case, rn, tmodel, x):
    """The twin computes the rnnfast model's function: same outputs on a few samples, in
    inference mode, before training (float32: within 1e-4)."""
    n = getattr(case, "check_samples", 16)
    tmodel.eval()
    with torch.no_grad():
        theirs = case.torch_predict(tmodel(x[:n])).numpy()
    ours = rn.predict(case.x[:n], verbose=0)
    error = float(np.abs(ours - theirs).max())
    if not error <= 1e-4:
        raise AssertionError(f"{type(case).__name__}: the PyTorch twin's outputs differ from "
                             f"rnnfast's by {error:.2e} before training")
    return error


def torch_epoch(case, tmodel, opt, x, y, clipnorm, order):
    """One epoch like ``fit``'s, over the samples in ``order``; returns (seconds, mean loss,
    mean metric)."""
    tmodel.train()
    params = [p for p in tmodel.parameters() if p.requires_grad]
    n, bs = len(x), case.batch_size
    start = time.perf_counter()
    order = torch.from_numpy(order)
    loss_sum = metric_sum = 0.0
    for b in range(0, n, bs):
        idx = order[b:b + bs]
        xb, yb = x[idx], y[idx]
        out = tmodel(xb)
        loss = case.torch_loss(out, yb)
        opt.zero_grad()
        loss.backward()
        if clipnorm:
            for p in params:
                torch.nn.utils.clip_grad_norm_([p], clipnorm)
        opt.step()
        loss_sum += loss.item() * len(idx)
        with torch.no_grad():
            metric_sum += case.torch_metric(out, yb).sum().item()
    return time.perf_counter() - start, loss_sum / n, metric_sum / n


def torch_score(case, tmodel, x, y):
    tmodel.eval()
    total = 0.0
    with torch.no_grad():
        for b in range(0, len(x), case.batch_size):
            total += case.torch_metric(tmodel(x[b:b + case.batch_size]),
                                       y[b:b + case.batch_size]).sum().item()
    return total / len(x)


def run_translation(epochs, quick, seed):
    """The translation example: its ``nn.Seq2Seq`` trained by its loop (``train_epoch``), and
    ``TorchSeq2Seq`` from the same weights on the same batches (Adam, joint gradient norm
    clipped to 5, cross-entropy over the real target tokens)."""
    import translate as example

    (src, tgt, _), _, (src_tok, tgt_tok), _ = example.load_data(
        pairs=150 if quick else 8000, seed=seed)
    sizes = dict(embedding_dim=16, hidden=32) if quick else {}   # the example's --quick sizes
    model, opt, loss = example.build_model(src_tok.vocab_size, tgt_tok.vocab_size + 2,
                                           seed=seed, **sizes)
    twin = TorchSeq2Seq(model)
    g = opt.param_groups[0]
    t_opt = torch.optim.Adam(twin.parameters(), lr=g["lr"], betas=g["betas"], eps=g["eps"])
    batch_size = 64
    x, t_in, _ = example.make_batch(src[:16], tgt[:16])
    model.eval()
    twin.eval()
    with torch.no_grad():
        error = float(np.abs(model(x, t_in) - twin(torch.from_numpy(x),
                                                  torch.from_numpy(t_in))[0].numpy()).max())
    if not error <= 1e-4:
        raise AssertionError(f"translate: the PyTorch twin's outputs differ from rnnfast's by "
                             f"{error:.2e} before training")
    rng = np.random.default_rng(seed)
    rn_times, torch_times, rn_logs, torch_logs = [], [], [], []
    for _ in range(epochs):
        order = copy.deepcopy(rng).permutation(len(src))      # the order train_epoch draws
        model.train()
        start = time.perf_counter()
        rn_logs.append(example.train_epoch(model, opt, loss, src, tgt, batch_size, rng))
        rn_times.append(time.perf_counter() - start)
        twin.train()
        start = time.perf_counter()
        total = correct = tokens = 0.0
        for b in range(0, len(order), batch_size):
            idx = order[b:b + batch_size]
            xb, tb, ob = (torch.from_numpy(a) for a in example.make_batch(
                [src[i] for i in idx], [tgt[i] for i in idx]))
            logits, _ = twin(xb, tb)
            value = torch.nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]),
                                                      ob.reshape(-1), ignore_index=0)
            t_opt.zero_grad()
            value.backward()
            torch.nn.utils.clip_grad_norm_(twin.parameters(), 5.0)
            t_opt.step()
            with torch.no_grad():
                mask = ob != 0
                n = mask.sum().item()
                total += value.item() * n
                tokens += n
                correct += ((logits.argmax(-1) == ob) & mask).sum().item()
        torch_times.append(time.perf_counter() - start)
        torch_logs.append((total / tokens, correct / tokens))
    return {"example": "translate", "samples": len(src),
            "sample_shape": (f"<={max(map(len, src))}",), "batch": batch_size,
            "rnnfast_s": steady(rn_times), "torch_s": steady(torch_times),
            "rnnfast_loss": float(rn_logs[-1][0]), "torch_loss": torch_logs[-1][0],
            "rnnfast_metric": float(rn_logs[-1][1]), "torch_metric": torch_logs[-1][1],
            "metric": "train token accuracy", "rnnfast_epochs": rn_times,
            "torch_epochs": torch_times}


def generation_table(args):
    """WaveNet generation, batch 1, with the example's model sizes: ``nn.WaveNetGenerator``
    (the fast WaveNet queues) against the naive PyTorch loop that recomputes the receptive
    field per sample (``wavenet_vs_torch``), logits checked equal first."""
    channels, dilations = (16, [2 ** i for i in range(8)]) if args.quick else \
        (32, [2 ** i for i in range(10)] * 2)
    return generation_report(channels, dilations, args.generate or (40 if args.quick else 300),
                             args.seed)


def run_case(name, epochs, quick, seed):
    if name == "translate":
        return run_translation(epochs, quick, seed)
    case = CASES[name](__import__(name), quick, seed)
    rn = case.model
    rn.build((None,) + case.x.shape[1:], case.x.dtype)
    torch.manual_seed(seed)
    tmodel = case.twin
    if not case.twin_has_weights:
        copy_weights(rn, tmodel)
    opt = torch_optimizer(rn, tmodel)
    clipnorm = clip_norm_of(rn)
    x, y = case.tensors(case.x, case.y)
    check_twin(case, rn, tmodel, x)
    timer = EpochTimer()
    rn_history, torch_times, torch_logs = {}, [], []
    for _ in range(epochs):
        order = copy.deepcopy(rn.rng).permutation(len(case.x))  # the order fit will draw
        history = rn.fit(case.x, case.y, batch_size=case.batch_size, epochs=1, verbose=0,
                         callbacks=[timer])
        for key, values in history.items():
            rn_history.setdefault(key, []).extend(values)
        seconds, loss, metric = torch_epoch(case, tmodel, opt, x, y, clipnorm, order)
        torch_times.append(seconds)
        torch_logs.append((loss, metric))
    if case.xt is not None:
        rn_metric = rn.evaluate(case.xt, case.yt, batch_size=case.batch_size, verbose=0,
                                return_dict=True)[case.metric]
        torch_metric = torch_score(case, tmodel, *case.tensors(case.xt, case.yt))
        where = f"test {case.metric}"
    else:
        rn_metric, torch_metric = rn_history[case.metric][-1], torch_logs[-1][1]
        where = f"train {case.metric}"
    return {"example": name, "samples": len(case.x), "sample_shape": case.x.shape[1:],
            "batch": case.batch_size, "rnnfast_s": steady(timer.times),
            "torch_s": steady(torch_times), "rnnfast_loss": rn_history["loss"][-1],
            "torch_loss": torch_logs[-1][0], "rnnfast_metric": rn_metric,
            "torch_metric": torch_metric, "metric": where,
            "rnnfast_epochs": timer.times, "torch_epochs": torch_times}


def table(rows):
    return _epochs.table(rows, "torch", "torch", metric=True)


def main(argv=None):
    parser = _epochs.make_parser(__doc__, NAMES, 2)
    parser.add_argument("--generate", type=int, default=None,
                        help="WaveNet samples generated by each side (default 300, --quick 40)")
    args = _epochs.parse(parser, argv)
    print(_epochs.header(f"Seed examples: time per epoch, rnnfast vs PyTorch {torch.__version__} "
                         "CPU", args), flush=True)
    rows = []
    for name in args.examples:
        started = time.perf_counter()
        rows.append(run_case(name, args.epochs, args.quick, args.seed))
        print(f"{_epochs.progress(rows[-1], 'torch', 'torch')} "
              f"({time.perf_counter() - started:.0f}s with data and checks)", flush=True)
    print()
    print(table(rows))
    if "wavenet" in args.examples:
        generation_table(args)
    print(f"\nload average at the end {_env.load_average()}; torch / rnnfast above 1: rnnfast "
          "is faster")
    return rows


if __name__ == "__main__":
    main()
