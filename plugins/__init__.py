"""First-party plugins, written only against ``toolkit``'s public API and registered by
entry points in the root ``pyproject.toml`` exactly as a third-party package would."""
