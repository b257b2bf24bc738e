"""Backbones: build a pretrained network and describe its anatomy once."""

from ftlab.backbones.anatomy import Anatomy, Capability
from ftlab.backbones.base import Backbone
from ftlab.backbones.hf import HFBackbone, HFEncoderBackbone
from ftlab.backbones.timm_backbone import TimmBackbone

__all__ = ["Anatomy", "Backbone", "Capability", "HFBackbone", "HFEncoderBackbone", "TimmBackbone"]
