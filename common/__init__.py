"""Shared building blocks for the algorithms in algorithms/ (never imports from algorithms/)."""
