"""The pull-through mirror: upstream hubs, their cached metadata, and verified cached files."""
