"""Support's adapters over core.actions: the admin CLI (and, later, the Textual console)."""
