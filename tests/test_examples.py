"""The seed workflows in examples/ run end to end (``python examples/<name>.py --quick``), on
their synthetic data and on small files given the way a user gives their own."""
import pathlib
import struct
import subprocess
import sys

import numpy as np

from subprocess_env import python_env

ROOT = pathlib.Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "examples"


def run(script, *args, cwd=None):
    env = python_env()
    env.pop("RNNFAST_EXAMPLES_QUICK", None)
    proc = subprocess.run([sys.executable, str(EXAMPLES / script), "--quick", *args],
                          capture_output=True, text=True, env=env, cwd=cwd, timeout=180)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-4000:]
    return proc.stdout


def check_epochs(out, epochs):
    lines = [line for line in out.splitlines() if line.startswith("Epoch ")]
    assert len(lines) == epochs, out
    assert all("s/step) - loss: " in line or "ms/step) - loss: " in line for line in lines), out
    assert "time per epoch: " in out


def test_reuters_topics_synthetic():
    out = run("reuters_topics.py")
    check_epochs(out, 2)
    assert "synthetic articles" in out and "Total params: 185,446" in out
    assert "test accuracy: " in out and "val_accuracy" in out


def test_reuters_topics_with_a_file_of_token_ids(tmp_path, rng):
    lines = [f"{k % 3}\t" + " ".join(str(t) for t in rng.integers(1, 1500, rng.integers(5, 120)))
             for k in range(40)]
    path = tmp_path / "articles.tsv"
    path.write_text("\n".join(lines) + "\n")
    out = run("reuters_topics.py", "--data", str(path))
    check_epochs(out, 2)
    assert "32 training and 8 test articles, 46 categories" in out


def test_imdb_sentiment_synthetic_and_text_file(tmp_path):
    out = run("imdb_sentiment.py")
    check_epochs(out, 2)
    assert "conv1d (Conv1D)              (None, None, 64)          32064" in out
    assert "test accuracy: " in out
    words = ["good", "great", "bad", "awful", "film", "plot", "not", "the", "actors"]
    gen = np.random.default_rng(3)
    reviews = [f"{k % 2}\t" + " ".join(gen.choice(words, 12)) for k in range(30)]
    path = tmp_path / "reviews.tsv"
    path.write_text("\n".join(reviews))
    out = run("imdb_sentiment.py", "--data", str(path))
    assert "24 training and 6 test reviews" in out


def test_stock_forecast_synthetic_and_csv(tmp_path):
    png = tmp_path / "plot.png"
    out = run("stock_forecast.py", "--plot", str(png), cwd=tmp_path)
    check_epochs(out, 3)
    assert "test RMSE: " in out and "persistence baseline" in out
    # matplotlib is a test dependency ([test] extra): the plot must be a real PNG
    assert f"plot written to {png}" in out, out
    data = png.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and data[12:16] == b"IHDR"
    assert struct.unpack(">II", data[16:24]) == (900, 400)  # figsize (9, 4) at 100 dpi
    assert len(data) > 10_000 and data[-8:-4] == b"IEND"
    days = np.arange(120)
    close = 100 + 10 * np.sin(days / 5)
    rows = ["Date,Open,High,Low,Volume,Close"] + [
        f"2021-01-{d:03d},{c - 1:.2f},{c + 2:.2f},{c - 2:.2f},{1000 + d},{c:.2f}"
        for d, c in zip(days, close)][::-1]
    path = tmp_path / "prices.csv"
    path.write_text("\n".join(rows))
    out = run("stock_forecast.py", "--csv", str(path), "--reverse", "--plot",
              str(tmp_path / "p.png"), cwd=tmp_path)
    assert "features ['Open', 'High', 'Low', 'Volume', 'Close'], predicting 'Close'" in out


def test_char_rnn_generation_and_word_level(tmp_path):
    out = run("char_rnn.py")
    check_epochs(out, 1)
    for name in ("greedy", "sampling, T=0.5", "sampling, T=1.0", "beam search, width 5"):
        assert f"{name}: " in out
    path = tmp_path / "story.txt"
    path.write_text("the cat sat on the mat. the dog sat on the log. " * 20)
    out = run("char_rnn.py", "--text", str(path), "--level", "word", "--prompt", "the cat")
    assert "word tokens, vocabulary 7" in out and "greedy: the cat " in out


def test_char_rnn_with_a_gru():
    out = run("char_rnn.py", "--cell", "gru")
    check_epochs(out, 1)
    # GRU(128) on 32 features, Keras' count with reset_after (two biases): 3 * 128 * (32 + 128 + 2)
    assert "gru (GRU)                    (None, 128)               62208" in out
    assert "lstm" not in out.lower()
    assert "beam search, width 5: " in out


def check_png(path, size):
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and data[12:16] == b"IHDR"
    assert struct.unpack(">II", data[16:24]) == size
    assert len(data) > 10_000 and data[-8:-4] == b"IEND"


def test_wavenet_synthetic(tmp_path):
    png = tmp_path / "wave.png"
    out = run("wavenet.py", "--plot", str(png), cwd=tmp_path)
    check_epochs(out, 2)
    assert "synthetic melodies: 3 training and 1 test sequences of 16000 samples" in out
    assert "test loss: " in out and "test accuracy: " in out
    assert "persistence baseline" in out
    assert "samples/s (fast WaveNet queues, 8 layers)" in out
    assert f"plot written to {png}" in out, out
    check_png(png, (900, 400))                     # figsize (9, 4) at 100 dpi


def test_wavenet_with_wav_npy_and_csv_files(tmp_path):
    import wave

    t = np.arange(6000)
    signal = 0.5 * np.sin(2 * np.pi * t / 37) + 0.2 * np.sin(2 * np.pi * t / 11)
    path = tmp_path / "tone.wav"
    with wave.open(str(path), "wb") as f:
        f.setnchannels(2)
        f.setsampwidth(2)
        f.setframerate(8000)
        stereo = np.repeat((signal * 20000).astype("<i2")[:, None], 2, axis=1)
        f.writeframes(stereo.tobytes())
    out = run("wavenet.py", "--data", str(path), "--length", "1000", "--plot",
              str(tmp_path / "w.png"), cwd=tmp_path)
    assert f"{path} (8000 Hz, 2 channel(s)): 5 training and 1 test sequences of 1000" in out
    check_epochs(out, 2)
    np.save(tmp_path / "rows.npy", signal.reshape(5, 1200))
    out = run("wavenet.py", "--data", str(tmp_path / "rows.npy"), "--plot",
              str(tmp_path / "n.png"), cwd=tmp_path)
    assert "(array): 4 training and 1 test sequences of 1200 samples" in out
    rows = ["time,level"] + [f"{k},{v:.5f}" for k, v in enumerate(signal[:2000])]
    (tmp_path / "series.csv").write_text("\n".join(rows))
    out = run("wavenet.py", "--data", str(tmp_path / "series.csv"), "--column", "level",
              "--plot", str(tmp_path / "c.png"), cwd=tmp_path)
    assert "(column level): 4 training and 1 test sequences of 400 samples" in out


def test_torch_ddp_lstm_without_torch_says_how_to_install_it():
    """(The example itself runs with --quick in test_torch_ddp.py.)"""
    code = ("import runpy, sys; sys.modules['torch'] = None; "
            f"sys.argv = ['torch_ddp_lstm.py', '--quick']; "
            f"runpy.run_path({str(EXAMPLES / 'torch_ddp_lstm.py')!r}, run_name='__main__')")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          env=python_env(), timeout=120)
    assert proc.returncode == 1
    assert "torch_ddp_lstm.py needs PyTorch" in proc.stderr
    assert "pip install 'rnnfast[torch]'" in proc.stderr


def test_translate_synthetic_and_anki_file(tmp_path):
    png = tmp_path / "attention.png"
    out = run("translate.py", "--plot", str(png), cwd=tmp_path)
    check_epochs(out, 2)
    assert "synthetic language pair: 270 training and 30 test pairs" in out
    assert "BLEU greedy (k=1): " in out and "BLEU beam search (k=5): " in out
    assert out.count("  source:    ") == 5 and out.count("  reference: ") == 5
    assert f"attention heat-map written to {png}" in out, out
    check_png(png, (800, 600))                     # figsize (8, 6) at 100 dpi
    # Tatoeba/Anki lines: source, target, attribution
    pairs = [("Go.", "Va !"), ("Run!", "Cours !"), ("Who?", "Qui ?"), ("Wow!", "Ça alors !"),
             ("I see.", "Je comprends."), ("I try.", "J'essaye."), ("Help!", "À l'aide !")]
    lines = [f"{s}\t{t}\tCC-BY 2.0 (France) Attribution: tatoeba.org #{k}"
             for k, (s, t) in enumerate(pairs * 3)]
    path = tmp_path / "fra.txt"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    out = run("translate.py", "--data", str(path), "--attention", "additive", "--plot",
              str(tmp_path / "a.png"), cwd=tmp_path)
    assert f"{path}: 19 training and 2 test pairs, vocabularies 8 and 10 words" in out, out
    assert "model: additive attention" in out
    check_epochs(out, 2)
    bad = tmp_path / "bad.txt"
    bad.write_text("only one column\n")
    env = python_env()
    proc = subprocess.run([sys.executable, str(EXAMPLES / "translate.py"), "--quick", "--data",
                           str(bad)], capture_output=True, text=True, env=env, cwd=tmp_path,
                          timeout=180)
    assert proc.returncode != 0 and "bad.txt:1: expected 'source<TAB>target'" in proc.stderr


def test_functional_translate_synthetic():
    out = run("functional_translate.py")
    check_epochs(out, 2)
    assert "synthetic language pair: 270 training and 30 test pairs" in out
    assert 'Model: "translator"' in out and "Connected to" in out
    assert "decoder (LSTM)" in out and "tgt_embedding[0][0], encoder[0][1], encoder[0][2]" in out
    assert "BLEU greedy: " in out and out.count("  greedy:    ") == 3
    assert "saved and loaded: predictions equal" in out
