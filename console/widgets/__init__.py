"""Reusable pieces of the console: tables, the status badge, modals."""
