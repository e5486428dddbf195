"""``python -m benchmarks``: run the side-by-side speed comparison."""

from benchmarks.run import main

raise SystemExit(main())
