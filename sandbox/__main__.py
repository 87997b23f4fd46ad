"""`python -m sandbox` runs the command line."""

from sandbox.quick import main

# Named `sandbox`, not `python -m sandbox`: help, usage and the shell completion script
# then match the installed command.
main(prog_name="sandbox")
