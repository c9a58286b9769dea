"""``python -m mlcd_actions`` is ``mlcd``."""

from mlcd_actions.cli import main

main()
