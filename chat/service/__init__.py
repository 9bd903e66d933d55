"""The one place that decides: validate, check membership, blocks and limits, persist, commit.

Views and the socket handler call in here with plain ids; nothing here imports
Flask's ``request``, the socket library or the registry.
"""
