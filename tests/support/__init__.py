"""Helpers shared by the test tiers (real external programs, no mocks)."""
