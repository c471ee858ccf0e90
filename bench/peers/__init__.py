"""Job modules of the peer systems, imported by their worker processes."""
