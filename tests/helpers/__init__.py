"""What tests share: fakes at the engine boundary, harnesses of the real CLI, builders of
scenario files and result rows, renderers. Test modules import from here, never from each other;
fixtures live in conftest.py."""
