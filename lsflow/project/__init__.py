"""The application layer: what the CLI commands and the Dagster assets do, one function each.

- `take_project_snapshot` (snapshot.py): a project's tasks from a source, all or the changed ones;
- `update_store` (store.py): the snapshot folded into the project's normalized store;
- `build_datasets` (datasets.py): every requested format from the store, reusing unchanged output;
- `convert_export` (convert.py): every requested format from a Label Studio export file.

`ProjectLayout` (layout.py) names every file and folder of a project's output.
"""
