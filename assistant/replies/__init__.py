"""Assistant replies: the reply task (`job`), its registry and control channel (`runtime`),
and the delta coalescer (`coalescer`). Frames reach connections through `assistant.delivery`.
"""

from assistant.replies.job import UNAVAILABLE_TEXT, ReplyJob, orphan_end_frame, orphan_ended
from assistant.replies.runtime import control, registry

__all__ = ["UNAVAILABLE_TEXT", "ReplyJob", "control", "orphan_end_frame", "orphan_ended", "registry"]
