"""Stop cleanly when the run is interrupted (Ctrl-C, ``kill``, ``scancel``, ``docker stop``).

SIGTERM and SIGINT raise :class:`KeyboardInterrupt` in the main process and are
remembered, because nipype records an exception raised inside a running step
(with the Linear plugin, in this process) as a failure of that step and goes on;
:func:`stop_if_interrupted`, nipype's status callback, then stops the workflow at
once. Either way the command line stops the same way: worker processes are stopped,
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

from stimuli_models.cache import remove_stale_temporaries

LOGGER = logging.getLogger("brainenc")
_RECEIVED: list[int] = []


def interrupted() -> bool:
    """Whether SIGTERM or SIGINT arrived within :func:`sigterm_as_interrupt`."""
    return bool(_RECEIVED)


def stop_if_interrupted(_node=None, _status=None) -> None:
    """Nipype ``status_callback``: stop the workflow after an interrupt.

    Raises
    ------
    KeyboardInterrupt
        When a signal arrived (even if nipype swallowed the first one).
    """
    if _RECEIVED:
        raise KeyboardInterrupt(f"received signal {signal.Signals(_RECEIVED[0]).name}")


@contextlib.contextmanager
def sigterm_as_interrupt() -> Iterator[None]:
    """Within the block, SIGTERM and SIGINT raise :class:`KeyboardInterrupt` (once).

    Further signals while the interrupt is being handled are ignored, so that the
    clean-up is not cut short; the previous handlers are restored on exit. Outside
    the main thread (where Python cannot install handlers) this does nothing.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    _RECEIVED.clear()

    def _handler(signum, _frame):
        if _RECEIVED:
            return
        _RECEIVED.append(signum)
        # nipype reports the interrupted step as a crash, with its traceback: not one here
        logging.getLogger("nipype.workflow").setLevel(logging.CRITICAL)
        raise KeyboardInterrupt(f"received signal {signal.Signals(signum).name}")

    previous = {sig: signal.signal(sig, _handler) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        _RECEIVED.clear()


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
    # the process pool reports its stopped workers as a crash: expected here
    logging.getLogger("concurrent.futures").setLevel(logging.CRITICAL)
    stop_workers()
    removed = remove_stale_temporaries(output_dir)
    if removed:
        LOGGER.info("removed %d temporary file(s) of interrupted work", len(removed))
