"""Checkpoint formats of other projects that the toolkit imports and exports (MOSS-Speech)."""
