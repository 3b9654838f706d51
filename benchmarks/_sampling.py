"""Peak of a memory reading while a block runs, sampled by a background thread."""

from __future__ import annotations

import threading


class PeakSampler:
    """Largest value of ``read()`` (bytes) while the block runs, sampled every ``interval`` s.

    ``mib`` is the peak's increase over the value at entry, in MiB.
    """

    def __init__(self, read, interval: float = 0.01):
        self.read, self.interval = read, interval

    def __enter__(self):
        self.base = self.peak = self.read()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, daemon=True)
        self._thread.start()
        return self

    def _watch(self):
        while not self._stop.wait(self.interval):
            self.peak = max(self.peak, self.read())

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, self.read())
        self.mib = (self.peak - self.base) / 2 ** 20
        return False
