"""Physical and biological reference tables (TOML, each value with its source) and their typed loaders."""
