"""History: rollups folded from the change log, exact counts at any past minute, top errors.

Everything here reads pre-aggregated tables that one cursor-driven step (`fold`) keeps; no
request scans the audit trail or the change log beyond a bounded tail.
"""
