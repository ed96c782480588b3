"""Stack backends: how a stack is brought up, checked, stopped and cleaned.

- ``stackd/``: the stack process that owns the platform and serves the control API;
- ``kafka/``: the Kafka clusters it drives (librdkafka's mock cluster, a real cluster);
- ``compose/``: the docker-compose services of the compose backend.
"""
