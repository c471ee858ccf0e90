"""Chaos harness: Baton's guarantees checked under real faults (``python -m bench.chaos``).

Real processes on 127.0.0.1 (a redis-server, worker nodes, a producer, a TCP
fault proxy), faults injected while runs flow, then an invariant checker that
reads Redis and the run records. See docs/reliability.md for the figures.
"""
