"""One folder per paper. `python -m projects.reproduce` runs every project's quick preset."""
