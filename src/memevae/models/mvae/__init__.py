from .config import MVAEConfig
from .model import MVAE

__all__ = ["MVAE", "MVAEConfig"]
