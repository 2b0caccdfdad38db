"""Interactive evaluation with the DAVIS robot (see README "Interactive evaluation")."""

from stm.cli import run
from stm.evaluation.interactive_eval import main

if __name__ == "__main__":
    run(main)
