"""Files in and out: datasets, output folders, JSON/CSV results, seeds, the environment."""
