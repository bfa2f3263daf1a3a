"""Specimen documents: fields in, byte-exact AAMVA, ICAO MRZ and IATA BCBP payloads out.

Written independently of the parsers in appliance/documents (their own
check-digit routines, field tables and layouts), so a round trip through
both proves they agree on the standard, not on a shared bug. The tests use
them for that; the demo uses them to print documents that are valid today
(a bundled sample passport expired years ago, and the counter says so).
"""
