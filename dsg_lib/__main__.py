"""``python -m dsg_lib``: the ``dsg-lib`` command line (see ``dsg_lib.cli``)."""

from __future__ import annotations

from .cli import main

if __name__ == "__main__":
    raise SystemExit(main())
