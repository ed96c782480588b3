"""The reference data platform under test: source db + outbox, relay, sink, contracts,
workload and canaries."""
