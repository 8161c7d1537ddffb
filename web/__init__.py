"""The WSGI adapter over core.actions: relink pages, OAuth callbacks and /healthz.

``web.app.create_app(rt)`` builds the Flask app; ``web.server`` runs it under
waitress. No business rule lives here: every page calls one ``core.actions``
function and renders its result.
"""
