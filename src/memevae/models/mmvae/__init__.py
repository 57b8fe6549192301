from .config import MMVAEConfig
from .model import MMVAE

__all__ = ["MMVAE", "MMVAEConfig"]
