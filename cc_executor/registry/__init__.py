"""What outlives a run (internal): the SQLite registry (store, migrations) and the transcript files. Pure storage:
nothing here starts or stops a process (reconciling dead owners is engine/recovery.py)."""
