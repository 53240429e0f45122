"""Channel-layer groups of the desk."""

#: Every open desk, in any process: told to re-read the queue when it changes.
DESK_QUEUE_GROUP = "desk.queue"
