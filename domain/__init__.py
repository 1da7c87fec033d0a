"""Pure models and logic shared by the producer and the operator (no I/O)."""
