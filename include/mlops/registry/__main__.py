"""``python -m include.mlops.registry show|rollback``: the registry CLI (``champion.main``)."""

from include.mlops.registry.champion import main

raise SystemExit(main())
