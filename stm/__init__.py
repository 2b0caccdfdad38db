"""stm: Space-Time Memory Networks for semi-supervised and interactive video object segmentation."""

from stm.errors import StmError
from stm.inference.predictor import VideoPredictor
from stm.model import STM

__all__ = ["STM", "StmError", "VideoPredictor"]
__version__ = "0.1.0"
