"""The do-it-yourself peer: the same job on Celery + Redis, run from its own environment
(``make bench-setup`` makes it: Debian's redis-server, celery[redis] in .tools/celery-peer)."""
