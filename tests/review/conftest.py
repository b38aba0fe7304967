from tests.clips.helpers import make_api_key
from tests.review.helpers import sample_all, sample_none, work

__all__ = ["make_api_key", "sample_all", "sample_none", "work"]
