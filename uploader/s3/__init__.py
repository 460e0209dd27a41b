"""The S3 backend (upload_aws): the only code that talks to S3."""
