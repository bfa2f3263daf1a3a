"""Gatecheck hardware: scanner, camera and indicator drivers for the counter appliance."""
