"""The WSGI adapter over core.actions (built in its own issue)."""
