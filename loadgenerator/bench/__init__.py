"""``boutique bench``: what the mesh costs, measured on this machine the way Istio measures it.

The same request paths are driven at fixed rates (open loop, constant rate, latency taken from
each request's intended send time) against the local mesh and against the same services without
it (``--no-mesh``), one stack after the other, so every figure is a ratio taken under the same
conditions. See ``docs/performance.md`` for the method and the latest results.

- ``loadgen``: the open-loop constant-rate client (runs in its own process)
- ``stats``: percentiles, rate ladders, the verdict of a step
- ``procstat``: CPU and memory of processes from ``/proc``
- ``machine``: what the machine is (cores, memory, versions)
- ``tuning``: the mesh knobs the tuning experiments turn
- ``runner``: starts the stacks, runs the steps, collects everything into one results dict
- ``analysis``: from the raw results to the figures (added latency, sidecar CPU, tuning)
- ``report``: the terminal table, ``results.json``, ``report.md`` and its charts
- ``progress``: the progress display while it runs
- ``cli``: the ``boutique bench`` subcommand
"""
