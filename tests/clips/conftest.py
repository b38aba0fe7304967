from tests.clips.helpers import ingest_token, make_api_key, s3_bucket, s3_endpoint, vendor

__all__ = ["ingest_token", "make_api_key", "s3_bucket", "s3_endpoint", "vendor"]
