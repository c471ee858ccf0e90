"""huey_consumer with gevent's monkey-patch applied first (huey's documented way to use -k greenlet)."""

from gevent import monkey

monkey.patch_all()

from huey.bin.huey_consumer import consumer_main  # noqa: E402

if __name__ == "__main__":
    consumer_main()
