"""What a data module offers a feature cache (:class:`ftlab.callbacks.FeatureCache`).

When the first part of the network is frozen and its inputs are deterministic, its output
can be computed once and served in place of the inputs. The data must then hand out each
split's inputs in a fixed order and serve the cached rows in their place: a
:class:`FeatureServing`. A data module says whether it can through one method,
``feature_serving()`` (:class:`OffersFeatures`): the object that serves them, or why it
cannot, as a clause that completes "features cannot be cached: ...".
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

if TYPE_CHECKING:
    import torch
    from torch.utils.data import DataLoader

#: why a data module that is not ftlab's gets no cache
NOT_FTLAB = "the data does not come from an ftlab data module"


class FeatureServing(Protocol):
    """Serving a frozen backbone's cached output in place of a data module's inputs."""

    def random_transform(self, split: str) -> bool:
        """Whether reading an item of ``split`` twice can give different inputs."""
        ...

    def raw_loader(self, split: str) -> DataLoader:
        """The split's inputs in dataset order, unshuffled: what the cache reads."""
        ...

    def set_features(self, split: str, features: torch.Tensor, labels: torch.Tensor) -> None:
        """Serve ``features`` (row i = item i of ``split``) instead of inputs."""
        ...

    def clear_features(self) -> None:
        """Serve inputs again, in every split (testing and later fits read real inputs)."""
        ...


@runtime_checkable
class OffersFeatures(Protocol):
    """A data module that says whether it can serve cached features."""

    def feature_serving(self) -> FeatureServing | str:
        """What serves cached features for this data, or why nothing can."""
        ...


def feature_serving(datamodule: Any) -> FeatureServing | str:
    """``datamodule``'s :class:`FeatureServing`, or the reason it has none."""
    if isinstance(datamodule, OffersFeatures):
        return datamodule.feature_serving()
    return NOT_FTLAB
