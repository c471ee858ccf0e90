"""Side-by-side benchmark of Baton and other Redis job queues (see README, "Benchmark")."""
