"""``python -m include.mlops.validation list|release``: the quarantine CLI (``quarantine.main``)."""

from include.mlops.validation.quarantine import main

raise SystemExit(main())
