"""Tasks: what a run predicts and how it is judged (``task=classify|sft|choice``), the third
axis beside the backbone and the method."""

from ftlab.tasks.base import Task
from ftlab.tasks.choice import Choice
from ftlab.tasks.classify import Classify
from ftlab.tasks.sft import SFT

__all__ = ["SFT", "Choice", "Classify", "Task"]
