"""Websocket routes (filled by the board)."""

websocket_urlpatterns: list = []
