"""The django.tasks worker behind `manage.py runboard_worker`: leases runs, runs their task
functions, heartbeats, and reports the outcome, all through `runs.services`."""
