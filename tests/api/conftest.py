from tests.clips.helpers import ingest_token, make_api_key, vendor

__all__ = ["ingest_token", "make_api_key", "vendor"]
