"""MongoDB helpers that hold on MongoDB 7 and FerretDB 1.24 alike (see ARCHITECTURE.md)."""
