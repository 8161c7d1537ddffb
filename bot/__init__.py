"""The Slack adapter over core.actions (built in its own issue)."""
