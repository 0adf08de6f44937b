"""`python -m facegate` runs the command line, like the `facegate` script."""

from facegate.cli import app

app(prog_name="facegate")
