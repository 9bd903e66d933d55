"""The benchmark of the chat server (issue 6): ``python -m bench [--quick]``; see README.md here."""
