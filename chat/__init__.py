"""A real-time chat server: Flask, flask-sock, gevent, MySQL and Redis."""
