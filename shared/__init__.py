"""Contracts and plumbing shared by the four services (no service logic here)."""
