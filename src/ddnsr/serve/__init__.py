"""``ddnsr serve``: a local web page for upscaling photos (see docs/serve.md).

:func:`ddnsr.serve.app.create_app` builds the Flask app; :mod:`ddnsr.serve.jobs` runs the network in one
worker thread. Flask is imported only when this is used (the ``serve`` extra).
"""
