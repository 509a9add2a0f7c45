"""``boutique bench``: what the mesh costs, measured on this machine the way Istio measures it.

The same request paths are driven at fixed rates (open loop, constant rate, latency taken from
each request's intended send time) against the local mesh and against the same services without
it (``--no-mesh``), one stack after the other, so every figure is a ratio taken under the same
conditions. See ``docs/performance.md`` for the method and the latest results.

- ``plans``: the plan (rates, durations, bounds) and the stacks a run starts (bench, tuning)
- ``tuning``: the mesh knobs the tuning experiments turn, as options of a local run
- ``stack``: a running stack as the steps see it; CPU and memory by kind of process
- ``probes``: the untimed parts (users, products, hops and connections from Envoy's counters)
- ``loadgen``: the open-loop constant-rate client (runs in its own process)
- ``steps``: one step through the load client; ``runner``: the stacks one after the other
- ``model``: the results as types (``Results``, ``StackInfo``, ``Step``), read back strictly
  from ``results.json`` through ``codec``
- ``stats``: percentiles, rate ladders, the verdict of a step; ``procstat``: CPU and memory from
  ``/proc``; ``machine``: what the machine is
- ``analysis`` and ``tuning_figures``: from the results to the figures (``summary``'s types)
- ``report``: the terminal table, ``results.json`` and ``report.md``, from ``tables``,
  ``tuning_tables`` and ``charts``
- ``cost`` and ``cost_tables``: CPU-ms per request by process group on the cost stacks (the
  shop as ``boutique up`` runs it, tracing on and off) and issue 15's targets met or not
  (``boutique bench --cost``); ``profiling``: py-spy flame graphs during a step's window
- ``progress``: the progress display while it runs; ``cli``: the ``boutique bench`` subcommand
"""
