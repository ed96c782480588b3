"""The port: what the harness may do to a running stack, on any backend.

Runner, faults, probes, recovery steps, search and the pytest plugin see only
:class:`~datadrill.stack.port.Stack`; :class:`~datadrill.stack.client.StackClient`
implements it over the stack process's control API.
"""
