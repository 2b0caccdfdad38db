"""train: not implemented yet (see the project's issues)."""

import sys

from stm.cli import run


def main(argv: list[str] | None = None) -> int:
    print("train.py: not implemented yet", file=sys.stderr)
    return 2


if __name__ == "__main__":
    run(main)
