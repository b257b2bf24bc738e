"""Fine-tuning strategies as Lightning callbacks, one file each, all one shape."""

from ftlab.methods.adapter import Adapter
from ftlab.methods.base import Method
from ftlab.methods.bitfit import BitFit
from ftlab.methods.full import Full
from ftlab.methods.gradual import Gradual
from ftlab.methods.last_n import LastN
from ftlab.methods.linear_probe import LinearProbe
from ftlab.methods.lora import LoRA
from ftlab.methods.peft_tuner import PeftTuner
from ftlab.methods.prefix import Prefix
from ftlab.methods.prompt import Prompt
from ftlab.methods.zero_shot import ZeroShot

__all__ = [
    "Adapter",
    "BitFit",
    "Full",
    "Gradual",
    "LastN",
    "LinearProbe",
    "LoRA",
    "Method",
    "PeftTuner",
    "Prefix",
    "Prompt",
    "ZeroShot",
]
