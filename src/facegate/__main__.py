"""The `facegate` command: `python -m facegate`, and the console script of the same name (`main`).

The command line is imported when `main` runs, not when this module is imported. multiprocessing's spawn
re-runs the parent's main module in every child it starts (as `__mp_main__`, with `__name__` not
`"__main__"`); for the console script that module is the generated wrapper, which imports `main` from here.
Importing the whole CLI there (every service, SQLAlchemy, typer, rich: about a second) would be paid again
by each engine worker at every start and restart of the pool. `python -m facegate` is not re-run at all.
"""


def main() -> None:
    from facegate.cli import app

    app(prog_name="facegate")


if __name__ == "__main__":
    main()
