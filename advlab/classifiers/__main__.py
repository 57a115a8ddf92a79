"""``python -m advlab.classifiers DATASET`` (alias of ``advlab classifier``)."""
from advlab.classifiers import main

main()
