"""What outlives a run (internal): the SQLite registry (store, migrations, recovery) and the transcript files."""
