"""Gatecheck sync: the contracts shared by registry and devices, and the sync agent."""
