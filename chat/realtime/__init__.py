"""The real-time layer: the /ws route, our WebSocket transport and frame parser, the
frame handler, and this process's connection registry."""
