"""Routes of the visitor side of the API (included by api/urls.py under /api/v1/).

Ids are matched as any path segment and parsed by the views (`VisitorView.public_id`): a
malformed one gets the API's JSON answer (403, like any id the token does not open) rather
than Django's HTML 404. The schema still says they are UUIDs (`PATH_CONVERTER_OVERRIDES`).
"""

from django.urls import path, register_converter

from api.visitor import views


class IdConverter:
    """One path segment, handed to the view as it is."""

    regex = "[^/]+"

    def to_python(self, value: str) -> str:
        return value

    def to_url(self, value: object) -> str:
        return str(value)


register_converter(IdConverter, "visitor_id")

urlpatterns = [
    path("conversations/", views.ConversationsView.as_view(), name="visitor-conversations"),
    path("conversations/<visitor_id:conversation_id>/", views.ConversationView.as_view(), name="visitor-conversation"),
    path("conversations/<visitor_id:conversation_id>/messages/", views.MessagesView.as_view(), name="visitor-messages"),
    path("conversations/<visitor_id:conversation_id>/rating/", views.RatingView.as_view(), name="visitor-rating"),
    path("conversations/<visitor_id:conversation_id>/handoff/", views.HandoffView.as_view(), name="visitor-handoff"),
    path("conversations/<visitor_id:conversation_id>/end/", views.ConversationEndView.as_view(), name="visitor-end"),
    path("messages/<visitor_id:message_id>/feedback/", views.FeedbackView.as_view(), name="visitor-feedback"),
]
