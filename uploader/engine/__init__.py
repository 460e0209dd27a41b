"""The engine: the backend contract, what to send, the executor and the runner, progress and the report."""
