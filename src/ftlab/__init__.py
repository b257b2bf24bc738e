"""ftlab: compare fine-tuning strategies on pretrained backbones, fairly and cheaply."""

__version__ = "0.1.0"
