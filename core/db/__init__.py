"""PostgreSQL: the connection pool, the migration runner and the embedded server."""
