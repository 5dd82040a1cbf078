"""CSV import: read any reasonable CSV file, map its columns to an entity's fields, validate every
row with the entity's form and service rules, and write it in batches, undoably.

- `reading`: the file (encoding, delimiter, header, rows) and its limits;
- `fields`: what each entity accepts, and the header guess;
- `service`: the dry run, the run, the undo and the history (`ImportService`);
- `jobs`: where a run executes (an RQ worker on the app's Redis, else a thread of the app).
"""
