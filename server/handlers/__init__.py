"""REST handlers, one module per resource; none imports another.

Each handler takes a :class:`~server.http.request.Request` and returns a response; it
reaches the app's services as ``request.app`` (server/app.py) and the request policy
through server/policy/. Their URLs, body limits, rate limits and OpenAPI operations are
in the route table (server/routes.py), not here.
"""
