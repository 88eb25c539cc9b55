"""The History page: charts of what happened, read from the fold's rollups."""
