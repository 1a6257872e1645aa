"""Training datasets with lineage, checks, balancing and a card (`rung data`).

    from rung.tune.data import build_dataset
    dataset, card = build_dataset(load_config("rung.yaml"))

Modules: sources (lineage defaults, skip counts), cases / traces / files (the three sources),
similarity + checks, balance, language + card, catalog (the datasets folder), build.
"""

from rung.tune.data.build import build_dataset, source_examples  # noqa: F401
from rung.tune.data.catalog import datasets_root, find_dataset, list_datasets  # noqa: F401
