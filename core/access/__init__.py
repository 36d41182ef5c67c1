"""Who owns what: owner ids, API keys, WebSocket tokens, and the owners of media files.

Nothing here knows about HTTP: server/access.py decides which owner a request acts for
and hands the id to these stores and to the project and job queries, which all filter on it.
"""
