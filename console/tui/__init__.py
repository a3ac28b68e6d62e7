"""Interactive console (Textual). Entry point: `run_app(session)` in app.py."""
