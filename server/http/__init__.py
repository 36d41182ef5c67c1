"""HTTP/1.1: a sans-I/O connection over h11 (connection.py), the request and response
types handlers see (request.py, response.py), the asyncio binding (protocol.py) and the
listening server with its lifecycle (server.py)."""
