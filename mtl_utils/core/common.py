"""Two things every other module needs: the error type and the log.

Nothing here is about multi-task learning; it only keeps the other files short.
Library code never prints: it logs to the "mtl_utils" logger, whose warnings always show.
The command line and `setup_notebook()` call `echo_log()`, so that a learner also sees the
training log, as plain output.
"""
import logging
import sys

log = logging.getLogger("mtl_utils")


class MTLError(Exception):
    """A mistake the user can fix (bad block name, missing data, ...).

    The message says what went wrong and what to do. The CLI prints it on one line and
    exits non-zero; notebooks show it as a normal exception.
    """


class _Echo(logging.Handler):
    """Each log line as plain text on whatever sys.stdout (warnings: sys.stderr) is at that moment:
    a notebook cell's output, a captured test stream, the terminal."""

    def emit(self, record):
        print(record.getMessage(), file=sys.stdout if record.levelno < logging.WARNING else sys.stderr)


log.addHandler(_Echo())           # warnings always show; the training log when echo_log() asks
log.setLevel(logging.WARNING)
log.propagate = False


def echo_log(on=True):
    """Show the package's training log (on=True), or only its warnings (on=False)."""
    log.setLevel(logging.INFO if on else logging.WARNING)
