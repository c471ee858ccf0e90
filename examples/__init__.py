"""Example jobs for the quick start."""
