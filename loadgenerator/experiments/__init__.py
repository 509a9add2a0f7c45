"""Running a fault-injection experiment (``mesh/experiments/``) under the Locust shoppers:
``runner`` (phases, fault switching), ``measure`` (shoppers, Envoy, books, traces), ``report``."""
