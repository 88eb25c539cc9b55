"""The run page, the run list and bulk actions by filter (operator UI, thin views)."""
