"""Data files the kiosk ships: translation catalogs, the example config, fictional demo people."""
