"""Repositories: one interface for hosted (and, later, mirrored) repos."""
