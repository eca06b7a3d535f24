"""PostgreSQL (asyncpg) and SQLite (aiosqlite) persistence with SQLAlchemy 2 Core: explicit row <-> domain mapping."""
