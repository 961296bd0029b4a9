"""Several nodes as one ORcast: the directory, pulls between nodes, shared state."""
