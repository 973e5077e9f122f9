"""nirf."""
