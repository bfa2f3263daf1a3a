"""What the API's views work with: the pages' services (accounts, reports, appeals, audit, devices) and the entry lookup."""

from __future__ import annotations

from dataclasses import dataclass

from flask import current_app

from registry.entry_lookup import EntryLookup


@dataclass
class ApiServices:
    """One per app, in ``app.extensions["gatecheck_api"]``."""

    entries: EntryLookup


def ui():
    """The pages' services (registry/web/__init__.py), shared so both apply the same rules to the same data."""
    return current_app.extensions["gatecheck_ui"]


def api() -> ApiServices:
    return current_app.extensions["gatecheck_api"]
