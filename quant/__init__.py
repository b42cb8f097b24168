"""qdse package quant."""
