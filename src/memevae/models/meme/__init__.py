from .config import MEMEConfig
from .model import MEME

__all__ = ["MEME", "MEMEConfig"]
