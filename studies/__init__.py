"""qdse package studies."""
