"""Fault-injection experiments: the ``*.yaml`` files here, their loader (``spec``), the
hypotheses' vocabulary (``hypotheses``) and the live switching of faults (``faults``)."""
