"""The local trace store: OTLP/HTTP in, SQLite, Jaeger's query API and a trace view out.

An embedded stand-in for OpenTelemetry Collector + Jaeger in the local run. ``otlp`` decodes
and translates spans, ``store`` keeps them, ``jaeger`` answers the query API, ``server`` runs
both ports, ``view/`` is the trace view's page, and ``terminal`` is ``boutique traces``.
"""
