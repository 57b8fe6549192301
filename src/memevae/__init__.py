"""memevae: MEME multimodal VAEs trained by mutual supervision."""
__version__ = "0.1.0"
