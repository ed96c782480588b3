"""Kafka clusters the stack process drives: librdkafka's mock cluster (embedded) and a
real cluster reached through its admin API (external, compose)."""
