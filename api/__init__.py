"""The HTTP contract the kiosk and the backend share: models, enums, ID-number rules."""
