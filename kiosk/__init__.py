"""The kiosk core: session state machine, runtime, backend client, receipts, config, CLI."""
