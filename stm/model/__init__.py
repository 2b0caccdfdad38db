"""The STM network: stateless tensor operations (see stm.model.stm)."""

from stm.model.stm import STM, QueryFeatures, Segmentation

__all__ = ["STM", "QueryFeatures", "Segmentation"]
