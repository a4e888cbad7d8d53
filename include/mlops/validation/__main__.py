"""``python -m include.mlops.validation list|release``: the quarantine CLI (``suite.main``)."""

from include.mlops.validation.suite import main

raise SystemExit(main())
