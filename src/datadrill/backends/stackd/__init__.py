"""The stack process: one per state directory, owning the Kafka cluster handle, the
platform's processes and the control API the harness drives every backend through."""

# Exit code when another stack process already holds this state directory. Here, not in
# .daemon, so that starting a stack does not import the stack process's modules.
EXIT_ALREADY_RUNNING = 3
