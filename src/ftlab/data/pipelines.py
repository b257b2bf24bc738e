"""What differs between image and text data: turning raw examples into tensors.

A pipeline is configured once with the backbone's own preprocessing (timm's data config
for images, a Hugging Face tokenizer for text), then builds a Dataset per split and says
how to collate it. The data module does everything else the same way for both, and takes
the pipeline that :data:`PIPELINES` holds for the modality its source declares.
"""

from __future__ import annotations

import inspect
import io
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar, Protocol

import numpy as np
import torch
from PIL import Image
from torch.utils.data import Dataset
from torch.utils.data import default_collate as torch_default_collate

from ftlab.data.sources.base import Split
from ftlab.errors import ConfigError, DataError

#: Above this, transformed images are not kept in memory but transformed per item.
IMAGE_CACHE_LIMIT_BYTES = 2 * 1024**3


def positive_int(name: str, value: Any, allow_none: bool = True) -> int | None:
    """``value`` checked to be a positive integer (or None, when allowed)."""
    if value is None and allow_none:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise ConfigError(
            f"{name}={value!r} must be a positive integer{' or null' if allow_none else ''}."
        )
    return value


class Pipeline(Protocol):
    """What the data module asks of the pipeline for its source's modality."""

    #: the modality it reads (a source's :attr:`~ftlab.data.sources.Source.modality`)
    modality: ClassVar[str]
    #: what a backbone whose preprocessing it takes is called ("an image"), and which models
    #: those are: a modality mismatch's sentence names both
    backbone: ClassVar[str]
    models: ClassVar[str]
    collate_fn: Any

    @classmethod
    def from_settings(
        cls, data: str, augment: bool, image_size: Any, max_length: Any, cache: bool
    ) -> Pipeline:
        """The pipeline for ``data=<data>``'s settings, checked; a setting that does not
        apply to this modality is refused."""
        ...

    @staticmethod
    def accepts(pre: Any) -> bool:
        """Whether ``pre`` is the kind of preprocessing a backbone hands this pipeline."""
        ...

    def configure(self, pre: Any, model_name: str | None = None) -> None: ...

    def dataset(self, split: Split, train: bool) -> Dataset: ...

    def shard_item(self, train: bool) -> Any:
        """What turns a streamed raw item into a model item."""
        ...

    def random_transform(self, train: bool) -> bool:
        """Whether reading an item twice can give different inputs."""
        ...


def to_pil(item: Any) -> Image.Image:
    """An RGB PIL image from a uint8 array (grey or colour), an image file path, or an
    encoded image file's bytes (as streaming shards hold them)."""
    if isinstance(item, np.ndarray):
        return Image.fromarray(item).convert("RGB")
    encoded = isinstance(item, bytes | bytearray)
    try:
        with Image.open(io.BytesIO(item) if encoded else item) as image:
            return image.convert("RGB")
    except (OSError, ValueError) as e:
        what = f"{len(item)} bytes of an encoded image" if encoded else item
        raise DataError(f"cannot read image {what}: {e}") from e


class ImageDataset(Dataset):
    """Transforms each image when it is read (needed when augmenting)."""

    def __init__(self, split: Split, transform) -> None:
        self.split, self.transform = split, transform

    def __len__(self) -> int:
        return len(self.split)

    def __getitem__(self, i: int) -> dict[str, Any]:
        pixels = self.transform(to_pil(self.split.items[i]))
        return {"pixel_values": pixels, "labels": int(self.split.labels[i])}


class ShardImage:
    """A raw shard item (``{"id", "label", "image"}``) as a model item, transformed the way
    :class:`ImageDataset` transforms it. Runs in the loader workers."""

    def __init__(self, transform) -> None:
        self.transform = transform

    def __call__(self, raw: dict[str, Any]) -> dict[str, Any]:
        pixels = self.transform(to_pil(raw["image"]))
        return {"pixel_values": pixels, "labels": int(raw["label"]), "sample_id": int(raw["id"])}


class CachedImageDataset(Dataset):
    """Images resized and cropped once, on their first read, kept as uint8; normalised when
    read.

    Same numbers as timm's eval transform (ToTensor is ``/255`` of these very bytes), at a
    fraction of the cost per epoch. The cache lives in shared memory, so the first epoch's
    decoding is spread over the loader workers like any loader's, and every later epoch (in
    any worker, or in the main process) reads the bytes. Where shared memory is too small
    for it (a container's /dev/shm), the images are decoded here, once, before any worker.
    """

    def __init__(self, split: Split, geometry, mean: Sequence[float], std: Sequence[float]) -> None:
        self.split, self.geometry = split, geometry
        first = self._decode(0)
        self.pixels = torch.empty((len(split), *first.shape), dtype=torch.uint8)
        self.filled = torch.zeros(len(split), dtype=torch.bool)
        self.pixels[0], self.filled[0] = first, True
        try:
            self.pixels.share_memory_()
            self.filled.share_memory_()
        except RuntimeError:
            for i in range(len(split)):
                self._fill(i)
        self.labels = torch.as_tensor(split.labels, dtype=torch.long)
        self.mean = torch.as_tensor(mean, dtype=torch.float32).view(-1, 1, 1)
        self.std = torch.as_tensor(std, dtype=torch.float32).view(-1, 1, 1)

    def _decode(self, i: int) -> torch.Tensor:
        array = np.array(self.geometry(to_pil(self.split.items[i])), dtype=np.uint8)
        return torch.from_numpy(array).permute(2, 0, 1)

    def _fill(self, i: int) -> None:
        # a sampler yields each index once per epoch, so no two workers fill the same slot
        if not self.filled[i]:
            self.pixels[i] = self._decode(i)
            self.filled[i] = True

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, i: int) -> dict[str, Any]:
        self._fill(i)
        pixels = self.pixels[i].to(torch.float32).div(255).sub_(self.mean).div_(self.std)
        return {"pixel_values": pixels, "labels": self.labels[i]}


def _split_eval_transform(transform) -> tuple[Any, Sequence[float], Sequence[float]] | None:
    """(geometry, mean, std) when ``transform`` is PIL ops + ToTensor + Normalize, else None."""
    steps = list(getattr(transform, "transforms", []))
    if len(steps) < 2:
        return None
    to_tensor, normalize = steps[-2], steps[-1]
    if type(to_tensor).__name__ not in {"ToTensor", "MaybeToTensor"}:
        return None
    if type(normalize).__name__ != "Normalize":
        return None
    geometry = type(transform)(steps[:-2])
    return geometry, [float(m) for m in normalize.mean], [float(s) for s in normalize.std]


class ImagePipeline:
    modality = "image"
    backbone = "an image"
    models = "an image model (efficientnet_lite0 or another timm model)"

    @classmethod
    def from_settings(
        cls,
        data: str,
        augment: bool = False,
        image_size: Any = None,
        max_length: Any = None,
        cache: bool = True,
    ) -> ImagePipeline:
        return cls(augment, positive_int("image_size", image_size), cache)

    @staticmethod
    def accepts(pre: Any) -> bool:
        return isinstance(pre, Mapping)  # timm's data config

    def __init__(
        self, augment: bool = False, image_size: int | None = None, cache: bool = True
    ) -> None:
        self.augment, self.image_size, self.cache = bool(augment), image_size, bool(cache)
        self.data_config: dict[str, Any] | None = None
        self.collate_fn = torch_default_collate

    def configure(self, data_config: Mapping[str, Any], model_name: str | None = None) -> None:
        from timm.data import create_transform

        config = {
            k: tuple(v) if isinstance(v, Sequence) and not isinstance(v, str) else v
            for k, v in dict(data_config).items()
        }
        if "input_size" not in config:
            raise ConfigError(
                f"the image preprocessing config has no 'input_size' (keys: {', '.join(config)}); "
                "pass timm.data.resolve_model_data_config(model)."
            )
        if self.image_size is not None and config.get("fixed_input_size"):
            _check_fixed_size(config["input_size"], self.image_size, model_name)
        if self.image_size is not None:
            channels = config["input_size"][0] if len(config["input_size"]) == 3 else 3
            config["input_size"] = (channels, self.image_size, self.image_size)
        accepted = set(inspect.signature(create_transform).parameters)
        kwargs = {k: v for k, v in config.items() if k in accepted}
        self.data_config = config
        self.train_transform = create_transform(**kwargs, is_training=self.augment)
        self.eval_transform = create_transform(**kwargs, is_training=False)

    def dataset(self, split: Split, train: bool) -> Dataset:
        transform = self.train_transform if train else self.eval_transform
        if not (train and self.augment) and self.cache:
            parts = _split_eval_transform(transform)
            if parts is not None and self._fits(len(split)):
                return CachedImageDataset(split, *parts)
        return ImageDataset(split, transform)

    def shard_item(self, train: bool) -> ShardImage:
        """What turns a streamed raw item into a model item."""
        return ShardImage(self.train_transform if train else self.eval_transform)

    def random_transform(self, train: bool) -> bool:
        return train and self.augment

    def _fits(self, n: int) -> bool:
        assert self.data_config is not None
        return n * int(np.prod(self.data_config["input_size"])) <= IMAGE_CACHE_LIMIT_BYTES


def _check_fixed_size(input_size: Sequence[int], wanted: int, model_name: str | None) -> None:
    """A model built for one input size (a timm ViT) cannot take the data's other size.

    Built by the configs, a timm model follows data.image_size (model.image_size); this is
    left for a size set on the model by hand, or a checkpoint's model evaluated at another."""
    h, w = input_size[-2:]
    if (h, w) == (wanted, wanted):
        return
    model = model_name or "this model"
    raise ConfigError(
        f"{model} takes {h}x{w} images only, and data.image_size={wanted} asks for "
        f"{wanted}x{wanted}: set data.image_size={h} (or null, the model's own size), or build "
        f"the model at {wanted} with model.image_size={wanted} and no model.model_kwargs.img_size "
        "(timm resamples pretrained position embeddings)."
    )


def tokenize(tokenizer, texts: Sequence[Any], max_length: int) -> dict[str, list[torch.Tensor]]:
    """Texts (or ``(text, pair)`` tuples) tokenized, truncated and not padded: one long
    tensor per text under ``input_ids``, ``attention_mask`` and (when the tokenizer makes
    them) ``token_type_ids``."""
    encoded = tokenizer(list(texts), truncation=True, max_length=max_length)
    keys = [k for k in ("input_ids", "attention_mask", "token_type_ids") if k in encoded]
    features = {k: [torch.as_tensor(x, dtype=torch.long) for x in encoded[k]] for k in keys}
    if "attention_mask" not in features:
        features["attention_mask"] = [torch.ones_like(x) for x in features["input_ids"]]
    return features


class TokenizedDataset(Dataset):
    """Texts tokenized once (truncated, not padded); padding happens per batch."""

    def __init__(self, split: Split, tokenizer, max_length: int) -> None:
        self.features = tokenize(tokenizer, split.items, max_length)
        self.keys = list(self.features)
        self.labels = torch.as_tensor(split.labels, dtype=torch.long)

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, i: int) -> dict[str, Any]:
        item: dict[str, Any] = {k: self.features[k][i] for k in self.keys}
        item["labels"] = self.labels[i]
        return item


class PadCollate:
    """Pads a batch to its longest sequence (dynamic padding), on the tokenizer's side."""

    def __init__(
        self, pad_token_id: int, pad_token_type_id: int = 0, padding_side: str = "right"
    ) -> None:
        self.pad = {
            "input_ids": pad_token_id,
            "attention_mask": 0,
            "token_type_ids": pad_token_type_id,
        }
        self.left = padding_side == "left"

    def __call__(self, items: list[dict[str, Any]]) -> dict[str, torch.Tensor]:
        length = max(len(item["input_ids"]) for item in items)
        batch: dict[str, torch.Tensor] = {}
        for key in (k for k in self.pad if k in items[0]):
            out = torch.full((len(items), length), self.pad[key], dtype=torch.long)
            for row, item in enumerate(items):
                values = item[key]
                if self.left:
                    out[row, length - len(values) :] = values
                else:
                    out[row, : len(values)] = values
            batch[key] = out
        for key in ("labels", "sample_id"):
            if key in items[0]:
                batch[key] = torch.stack([torch.as_tensor(item[key]) for item in items]).long()
        return batch


class ShardText:
    """A raw shard item (``{"id", "label", "text"[, "text_pair"]}``) as a model item,
    tokenized the way :class:`TokenizedDataset` tokenizes it. Runs in the loader workers."""

    def __init__(self, tokenizer, max_length: int) -> None:
        self.tokenizer, self.max_length = tokenizer, max_length

    def __call__(self, raw: dict[str, Any]) -> dict[str, Any]:
        text = (raw["text"], raw["text_pair"]) if "text_pair" in raw else raw["text"]
        item: dict[str, Any] = {
            k: v[0] for k, v in tokenize(self.tokenizer, [text], self.max_length).items()
        }
        item.update(labels=int(raw["label"]), sample_id=int(raw["id"]))
        return item


class TextPipeline:
    modality = "text"
    backbone = "a text"
    models = "a text model (minilm, hf)"

    @classmethod
    def from_settings(
        cls,
        data: str,
        augment: bool = False,
        image_size: Any = None,
        max_length: Any = 128,
        cache: bool = True,
    ) -> TextPipeline:
        for key, value in (("augment", augment), ("image_size", image_size)):
            if value:
                raise ConfigError(
                    f"{key}={value!r} applies to images only, and data={data} is text; "
                    f"set data.{key}={'false' if key == 'augment' else 'null'}."
                )
        return cls(positive_int("max_length", max_length, allow_none=False))

    @staticmethod
    def accepts(pre: Any) -> bool:
        return callable(pre) and hasattr(pre, "pad_token_id")  # a Hugging Face tokenizer

    def __init__(self, max_length: int = 128) -> None:
        self.max_length = int(max_length)
        self.tokenizer = None
        self.collate_fn: PadCollate | None = None

    def configure(self, tokenizer, model_name: str | None = None) -> None:
        if tokenizer.pad_token_id is None:
            raise ConfigError(
                f"tokenizer {getattr(tokenizer, 'name_or_path', tokenizer)!r} has no pad token; "
                "set one (e.g. tokenizer.pad_token = tokenizer.eos_token) before training."
            )
        self.tokenizer = tokenizer
        self.collate_fn = PadCollate(
            tokenizer.pad_token_id,
            getattr(tokenizer, "pad_token_type_id", 0) or 0,
            getattr(tokenizer, "padding_side", "right"),
        )

    def dataset(self, split: Split, train: bool) -> Dataset:
        return TokenizedDataset(split, self.tokenizer, self.max_length)

    def shard_item(self, train: bool) -> ShardText:
        """What turns a streamed raw item into a model item."""
        return ShardText(self.tokenizer, self.max_length)

    def random_transform(self, train: bool) -> bool:
        return False


#: The pipeline for each modality a source can declare.
PIPELINES: dict[str, type[Pipeline]] = {p.modality: p for p in (ImagePipeline, TextPipeline)}


def pipeline_for(data: str, modality: str, **settings: Any) -> Pipeline:
    """The pipeline :data:`PIPELINES` holds for ``modality``, built from the data config's
    ``settings`` (augment, image_size, max_length, cache)."""
    pipeline = PIPELINES.get(modality)
    if pipeline is None:
        raise ConfigError(
            f"data={data}'s source declares modality {modality!r}, which no pipeline reads; "
            f"there are pipelines for {', '.join(PIPELINES)} (ftlab.data.pipelines.PIPELINES)."
        )
    return pipeline.from_settings(data, **settings)


def preprocessing_modality(pre: Any) -> str | None:
    """The modality whose pipeline takes ``pre`` (``"image"`` for a timm data config,
    ``"text"`` for a tokenizer), else None."""
    return next((m for m, p in PIPELINES.items() if p.accepts(pre)), None)
