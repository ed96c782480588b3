"""The stack process: one per state directory, owning the Kafka cluster handle, the
platform's processes and the control API the harness drives every backend through."""
