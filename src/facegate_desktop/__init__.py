"""facegate desktop: a PySide6 client of a facegate server, through its public HTTP API only."""
