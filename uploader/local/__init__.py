"""The local dataset: the catalog, the plan (and its shards), digests and their cache, cartloader's markers."""
