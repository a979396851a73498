"""The FastAPI service benchmark: ``python -m benchmarks.service`` (see ``benchmarks.service.runner``).

The same small TechEmpower-shaped app written four ways (raw driver, hand-written SQLAlchemy
ORM, Tortoise ORM, dsg_lib), each served by uvicorn (one worker) and loaded by ``wrk``.
"""
