"""The HTTP service: ``mobilefer serve`` (FastAPI + uvicorn, ``pip install 'mobilefer[serve]'``).

- ``config``: :class:`ServeConfig`, the service's settings, defined once.
- ``uploads``: request bodies to uint8 images, within limits, in memory only.
- ``gate``: bounded concurrent inference; a full queue answers 503 with Retry-After.
- ``app``: :func:`create_app`, the routes and the browser page (``static/``).
- ``server``: :func:`serve`, uvicorn with one model per worker process.
"""
