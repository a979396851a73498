"""Fault-injection, abuse and load tests against real servers."""
