"""``python -m kitdsl`` runs the command line."""

from kitdsl.cli import main

main()
