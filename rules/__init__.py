"""Supervision rule packs as data (YAML), the rule runner and the alert lifecycle — arriving with the supervision work."""
