"""Gatecheck registry: the central service where lists are kept, reviewed and published."""
