"""Calsync's core: every rule of the product lives here.

Nothing in this package imports from ``bot``, ``console`` or ``web``; those are
adapters that call :mod:`core.actions`.
"""
