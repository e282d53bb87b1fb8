"""Connecting to Kafka and Redis as the settings say: addresses, SASL, TLS, ACL users, cluster.

Every client the project makes takes its options here, so a secured
deployment is reached the same way by the worker, the CLI and the client.
"""
