"""The visitor side's endpoints, by subject: conversations, messages (turns), actions on them."""

from api.visitor.views.actions import FeedbackView, HandoffView, RatingView
from api.visitor.views.conversations import ConversationEndView, ConversationsView, ConversationView
from api.visitor.views.messages import MessagesView

__all__ = [
    "ConversationEndView",
    "ConversationView",
    "ConversationsView",
    "FeedbackView",
    "HandoffView",
    "MessagesView",
    "RatingView",
]
