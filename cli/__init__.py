"""The `cbdc` command line (Typer): `main` (up, down, status, demo, audit), and the wallet,
regulator, scenario and bench sub-commands; `console` renders for the terminal; `demo` is the
narrated demo. The top layer: it may import every package below it."""
