"""``python -m benchmarks`` entry point (see ``benchmarks.runner``)."""

from .runner import main

raise SystemExit(main())
