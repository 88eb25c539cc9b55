"""`.ci/requirements_met.py`, which `make` runs before anything is installed."""

from __future__ import annotations

import subprocess
import sys

from django.conf import settings

WITHOUT_PACKAGING = ("import runpy, sys; sys.modules['packaging'] = None; "
                     "sys.modules['packaging.requirements'] = None; "
                     "runpy.run_path('.ci/requirements_met.py', run_name='__main__')")


def test_a_fresh_venv_without_packaging_gets_a_line_not_a_traceback():
    done = subprocess.run([sys.executable, "-c", WITHOUT_PACKAGING], cwd=settings.BASE_DIR,
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 1
    assert "packaging is not installed yet" in done.stdout
    assert "Traceback" not in done.stderr
