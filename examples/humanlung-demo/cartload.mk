intermediate: not named by the catalog
