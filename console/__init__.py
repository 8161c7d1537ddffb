"""Support's adapters over core.actions: the Textual console (app.py) and the admin CLI (cli.py)."""
