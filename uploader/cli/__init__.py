"""The command line: usage texts, reading a command line, dispatch, and the cartloader shim."""
