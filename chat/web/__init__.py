"""Server-rendered pages and their forms: login, the chat, people, groups, notices, settings."""
