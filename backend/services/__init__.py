"""The reference service catalog (catalog.json), a data file read by backend/catalog.py."""
