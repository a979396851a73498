"""Serve one service app: ``python -m benchmarks.service.serve APP BACKEND PORT``.

uvicorn, one worker, on 127.0.0.1; uvloop and httptools when installed (the bench extra installs
``uvicorn[standard]``); no access log; loguru at WARNING, as in production.
"""

from __future__ import annotations

import argparse
import importlib
import sys

from ..common import backends

APPS = ("raw", "orm", "tortoise", "dsg_lib")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.service.serve")
    parser.add_argument("app", choices=APPS)
    parser.add_argument("backend", choices=list(backends()))
    parser.add_argument("port", type=int)
    args = parser.parse_args(argv)
    import uvicorn
    from loguru import logger

    logger.remove()
    logger.add(sys.stderr, level="WARNING")
    module = importlib.import_module(f"benchmarks.service.app_{args.app}")
    app = module.create_app(backends()[args.backend])
    uvicorn.run(app, host="127.0.0.1", port=args.port, workers=1, log_level="warning", access_log=False)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
