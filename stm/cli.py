"""What every command-line entry point shares: logging set-up and one-line errors.

A StmError (bad file, bad config, bad sizes) prints `error: <message>` and exits with status 1, with
no traceback; anything else is a bug and keeps its traceback.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable

from stm.errors import StmError


def run(main: Callable[[list[str] | None], int | None], argv: list[str] | None = None) -> None:
    logging.basicConfig(level=logging.INFO, format="%(levelname)s: %(message)s")
    try:
        status = main(argv)
    except StmError as exc:
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(1)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        sys.exit(130)
    sys.exit(status or 0)
