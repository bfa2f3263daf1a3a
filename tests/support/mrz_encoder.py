"""Moved to appliance/specimens/mrz.py (the demo prints specimens too); kept for tests written against the old path."""

from appliance.specimens.mrz import *  # noqa: F401,F403
