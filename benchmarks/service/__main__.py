"""``python -m benchmarks.service`` entry point (see ``benchmarks.service.runner``)."""

from .runner import main

raise SystemExit(main())
