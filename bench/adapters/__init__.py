"""One adapter per system, all with the same interface (see base.Adapter).

A name ``<peer>-<variant>`` is another configuration of ``<peer>``: it runs in
that peer's virtualenv (see :func:`base_system`).
"""

#: what ``bench/run`` measures by default, in this order
SYSTEMS = ("baton", "arq", "saq", "streaq", "taskiq", "bullmq", "rq", "huey", "dramatiq", "dramatiq-default",
           "celery")
#: other configurations, measured only when named with --systems (the evidence for the defaults' choice)
VARIANTS = ("taskiq-cli", "huey-greenlet", "rq-fork")
ALL = SYSTEMS + VARIANTS


def base_system(name: str) -> str:
    """The peer (and virtualenv) a system name belongs to: ``dramatiq-default`` -> ``dramatiq``."""
    return name.split("-", 1)[0]
