"""Message templates: the Liquid environment messages are checked and rendered with."""
