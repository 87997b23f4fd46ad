"""`python -m sandbox` runs the command line."""

from sandbox.quick import main

main()
