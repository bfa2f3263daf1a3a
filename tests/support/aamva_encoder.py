"""Moved to appliance/specimens/aamva.py (the demo prints specimens too); kept for tests written against the old path."""

from appliance.specimens.aamva import *  # noqa: F401,F403
