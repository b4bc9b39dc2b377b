"""Built-in simulator scenarios (TOML files): ``python -m fastkin simulate --list``."""
