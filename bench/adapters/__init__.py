"""One adapter per system, all with the same interface (see base.Adapter)."""

SYSTEMS = ("baton", "arq", "saq", "streaq", "taskiq", "bullmq", "rq", "huey", "dramatiq", "celery")
