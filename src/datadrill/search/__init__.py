"""Searching for the smallest fault schedule that breaks a platform, with Hypothesis.

- :mod:`~datadrill.search.strategies`: strategies for single faults and whole schedules.
- :mod:`~datadrill.search.steps`: executes schedule steps on a stack and records them as a
  replayable journal (``datadrill replay JOURNAL``).
- :mod:`~datadrill.search.machine`: a ``RuleBasedStateMachine`` whose rules inject and
  revert faults and advance the workload, and whose recoveries check that no order was
  lost or duplicated and that recovery stays inside its SLO.
"""
