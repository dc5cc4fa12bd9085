"""A one-line text progress bar (``12/90 [=====>........] - ETA: 3s - loss: 0.4321``) for
training loops, drawn only on a terminal: off when the stream is not a TTY (logs, pipes,
notebooks capturing output) unless forced with ``enabled=True``."""
import sys
import time

__all__ = ["Progbar", "format_seconds"]


def format_seconds(seconds):
    """``'850ms'``, ``'12s'``, ``'3:05'`` or ``'1:02:03'``."""
    if seconds < 1:
        return f"{seconds * 1000:.0f}ms"
    if seconds < 60:
        return f"{seconds:.0f}s"
    minutes, secs = divmod(int(seconds), 60)
    if minutes < 60:
        return f"{minutes}:{secs:02d}"
    hours, minutes = divmod(minutes, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}"


def _is_tty(stream):
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError, OSError):
        return False


class Progbar:
    """Progress of ``target`` steps: ``update(current, values)`` redraws the line (at most every
    ``interval`` seconds), ``finish(values)`` draws the final line and ends it."""

    def __init__(self, target, width=30, stream=None, enabled=None, interval=0.05):
        if isinstance(target, bool) or not isinstance(target, int) or target < 0:
            raise ValueError(f"target: expected an int >= 0, got {target!r}")
        self.target = target
        self.width = int(width)
        self.stream = sys.stdout if stream is None else stream
        self.enabled = _is_tty(self.stream) if enabled is None else bool(enabled)
        self.interval = float(interval)
        self.start = time.perf_counter()
        self._last_draw = 0.0
        self._last_len = 0

    def _line(self, current, values):
        digits = len(str(self.target))
        frac = current / self.target if self.target else 1.0
        filled = int(self.width * frac)
        bar = "=" * filled
        if current < self.target:
            bar = bar[:-1] + ">" if filled else ">"
        bar = f"{current:{digits}d}/{self.target} [{bar:.<{self.width}}]"
        elapsed = time.perf_counter() - self.start
        if current < self.target:
            eta = elapsed / current * (self.target - current) if current else 0.0
            timing = f" - ETA: {format_seconds(eta)}"
        else:
            per_step = elapsed / max(current, 1)
            timing = f" - {format_seconds(elapsed)} {format_seconds(per_step)}/step"
        stats = "".join(f" - {name}: {value:.4f}" for name, value in values)
        return bar + timing + stats

    def _draw(self, line, end=""):
        pad = max(self._last_len - len(line), 0)
        self.stream.write("\r" + line + " " * pad + end)
        self.stream.flush()
        self._last_len = len(line)

    def update(self, current, values=()):
        """Redraw for ``current`` steps done; ``values`` is a list of ``(name, float)``."""
        if not self.enabled:
            return
        now = time.perf_counter()
        if current < self.target and now - self._last_draw < self.interval:
            return
        self._last_draw = now
        self._draw(self._line(current, values))

    def finish(self, values=(), current=None):
        """Draw the last state (``current`` steps, default all) and end the line."""
        if self.enabled:
            self._draw(self._line(self.target if current is None else current, values), "\n")
