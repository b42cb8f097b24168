"""qdse package dse."""
