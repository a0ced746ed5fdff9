"""Alembic migration scripts; a package so that they ship inside `storage` when installed."""
