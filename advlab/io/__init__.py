"""Files in and out: datasets, output folders, JSON/CSV results (with provenance), content-keyed
caches with atomic writes and locks, seeds, the environment."""
