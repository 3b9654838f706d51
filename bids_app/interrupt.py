"""Stop cleanly when the run is interrupted (Ctrl-C, ``kill``, ``scancel``, ``docker stop``).

SIGTERM is turned into :class:`KeyboardInterrupt` in the main process, so that the
command line stops the same way for both signals: worker processes are stopped,
temporaries of the killed work are removed, and brainenc exits with code 130 and
asks to rerun the same command, which resumes from what was finished (nipype's
working directory and the content-addressed caches under ``OUTPUT_DIR``).
"""

from __future__ import annotations

import contextlib
import logging
import signal
import threading
from collections.abc import Iterator

LOGGER = logging.getLogger("brainenc")


@contextlib.contextmanager
def sigterm_as_interrupt() -> Iterator[None]:
    """Within the block, SIGTERM raises :class:`KeyboardInterrupt` (once) in the main thread.

    Further SIGTERMs while the interrupt is being handled are ignored, so that the
    clean-up is not cut short; the previous handler is restored on exit. Outside
    the main thread (where Python cannot install handlers) this does nothing.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    fired = []

    def _handler(signum, _frame):
        if fired:
            return
        fired.append(signum)
        raise KeyboardInterrupt(f"received signal {signal.Signals(signum).name}")

    previous = signal.signal(signal.SIGTERM, _handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def stop_workers(timeout: float = 10.0) -> int:
    """Terminate this process's multiprocessing children (nipype's MultiProc workers).

    Each child gets SIGTERM, then SIGKILL if it is still running after ``timeout``
    seconds in total.

    Parameters
    ----------
    timeout : float
        Seconds to wait for the children to exit after SIGTERM.

    Returns
    -------
    int
        Number of children that were running.
    """
    import multiprocessing
    import time

    children = multiprocessing.active_children()
    for child in children:
        with contextlib.suppress(OSError, ValueError):
            child.terminate()
    deadline = time.monotonic() + timeout
    for child in children:
        with contextlib.suppress(OSError, ValueError, AssertionError):
            child.join(max(0.0, deadline - time.monotonic()))
            if child.is_alive():
                child.kill()
                child.join(1.0)
    if children:
        LOGGER.info("stopped %d worker process(es)", len(children))
    return len(children)


def clean_after_interrupt(output_dir) -> None:
    """Stop the workers and remove the temporaries they left in ``output_dir``."""
    from stimuli_models.cache import remove_stale_temporaries

    stop_workers()
    removed = remove_stale_temporaries(output_dir)
    if removed:
        LOGGER.info("removed %d temporary file(s) of interrupted work", len(removed))
