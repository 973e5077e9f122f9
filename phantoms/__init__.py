"""Built-in scenario files (``*.toml``), shipped inside the wheel as ``imagingsim.phantoms``."""
