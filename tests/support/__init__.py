"""Helpers shared by the tests: services, worker processes, realistic streams."""
