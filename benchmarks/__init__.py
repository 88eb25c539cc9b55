"""Performance scripts (not tests): run them by hand, read the numbers, compare ratios."""
