"""Real magnetogram sources: JSOC, a folder of dataset files, the replay archive."""
