"""cartload-uploader: publish cartloader output to S3 or Zenodo."""

__version__ = "0.1.0"
