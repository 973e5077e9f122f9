"""Physical and biological reference tables, each value with its source in the data file."""
