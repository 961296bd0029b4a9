"""Drawing on the live picture: strokes, the board of a feed, and the log kept with its recordings."""
