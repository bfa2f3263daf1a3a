"""Gatecheck appliance: reads travel documents at the counter and gives verdicts offline."""
