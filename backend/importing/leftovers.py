"""What killed imports leave in a store, and its removal at the next start of the dashboard.

The code lives in :mod:`backend.store.leftovers` (it lists and removes the store's hidden folders, which only
the store package may do); this name stays because docs/store.md, a public format document, points here.
"""

from backend.store.leftovers import GRACE_S, OWNER, claim, clean, release

__all__ = ["GRACE_S", "OWNER", "claim", "clean", "release"]
