"""SQLAlchemy 2 async storage: models, the database handle, repositories, migrations."""

from ambient.storage.db import Database

__all__ = ["Database"]
