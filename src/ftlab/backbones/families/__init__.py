"""Backbone families: each turns a loaded model into an :class:`~ftlab.backbones.Anatomy`
and provides what the backbone's capability hooks need (attention wrappers, prompt
sources). Adding a family is one module here and one entry in its table, never an edit
inside a method (README: "Adding a backbone family").

- timm (:data:`TIMM_RECIPES`, tried in order, the first that recognises the model wins):
  plain vision transformers, Swin, then anything in stages (CNNs, ConvNeXt, the rest).
- Hugging Face: :mod:`.hf_bert` for models with BERT's module names, :mod:`.hf_generic`
  for every other family, found from its structure plus a row in its tables where a
  family names its parts otherwise.
"""

from __future__ import annotations

from ftlab.backbones.families import timm_staged, timm_swin, timm_vit

#: timm recipes in the order they are tried; the last takes every model
TIMM_RECIPES = (timm_vit, timm_swin, timm_staged)
