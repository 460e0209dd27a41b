"""The Zenodo backend (upload_zenodo): the only code that talks to Zenodo."""
