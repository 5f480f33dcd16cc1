"""The only owner of tables and sessions: models, the database, schema migrations, leases."""
