"""The Locust load generator: the shoppers (``locustfile.py``) and ``boutique load`` (``run.py``).

``run.py`` never imports Locust: Locust monkey-patches the standard library with gevent on import,
so it only ever runs in its own process.
"""
